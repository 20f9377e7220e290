//! Who may see which contacts.
//!
//! A user whose roles grant `view_recordings` sees the contacts of the
//! agents who share a team with them; one whose roles also grant `admin`
//! sees every contact. A contact belongs to the agent whose Windows login
//! it names, and the agent's teams are read at the time of the request:
//! moving an agent to another team moves their past contacts with them.
//! A contact whose login is no user's is seen by administrators only.
//!
//! Every query that reads a contact for a supervisor takes a [`Scope`] and
//! puts [`Scope::condition`] in its `WHERE`, so the rule is written once.
//! A contact outside the scope is answered as if it did not exist (404),
//! so its id reveals nothing.

use crate::auth::Supervisor;
use crate::directory::Permission;

/// The contacts a user may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every contact (an administrator; the admin token).
    All,
    /// The contacts of the agents in this user's teams.
    TeamsOf(i64),
}

impl Scope {
    /// The scope of a signed-in user.
    pub fn of(user: &Supervisor) -> Self {
        if user.may(Permission::Admin) {
            Scope::All
        } else {
            Scope::TeamsOf(user.user_id)
        }
    }

    /// An SQL condition on the contact aliased `c`, true for the contacts
    /// in this scope. Its one parameter is `:scope`, bound to
    /// [`Scope::param`].
    pub fn condition(self) -> &'static str {
        match self {
            Scope::All => ":scope IS NULL",
            // The contact's login among the logins of the members of the
            // user's teams; `users.windows_login` and `contacts.windows_login`
            // both compare case-insensitively (a unary `+` keeps the
            // column's collation). The `+` keeps SQLite from reading the
            // contacts by this list: a query reads them by its own
            // filter, and checks each row's login against the list.
            Scope::TeamsOf(_) => {
                "+c.windows_login IN (
                    SELECT u.windows_login FROM team_members mine
                    JOIN team_members theirs ON theirs.team_id = mine.team_id
                    JOIN users u ON u.id = theirs.user_id
                    WHERE mine.user_id = :scope)"
            }
        }
    }

    /// The value of `:scope` in [`Scope::condition`].
    pub fn param(self) -> Option<i64> {
        match self {
            Scope::All => None,
            Scope::TeamsOf(user) => Some(user),
        }
    }
}
