//! Recycling pictures' samples.
//!
//! A source builds each picture on a copy of the one before it, converting
//! only the blocks that changed ([`super::Conversion`]). A new copy was
//! 3 MiB a picture at 1080p, allocated and copied (or allocated and zeroed,
//! for a whole conversion): a third of the capture thread's time on a
//! screen where someone types. So the pictures of a source share a
//! [`Spare`]: the samples of the last picture dropped everywhere (the
//! encoder is done with it, the source holds a newer one) go there, and
//! the next picture is built in them. They are usually the samples of the
//! picture just before the one the new picture is built on, so only the
//! blocks that picture's change map names are copied into them.

use std::sync::{Arc, Mutex, PoisonError};

use yuvutils_rs::BufferStoreMut;

use super::Image;

/// The samples of a picture, shared by its clones: when the last clone
/// drops, they go to the source's [`Spare`].
pub(super) struct Samples {
    image: Image,
    /// The picture's id ([`super::YuvFrame::id`]).
    id: u64,
    spare: Arc<Spare>,
}

impl Samples {
    /// The samples `image` of picture `id`, which go to `spare` when
    /// dropped.
    pub(super) fn new(image: Image, id: u64, spare: Arc<Spare>) -> Self {
        Self { image, id, spare }
    }

    pub(super) fn image(&self) -> &Image {
        &self.image
    }

    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Where the samples go when dropped, and where the next picture built
    /// on this one finds samples to build in.
    pub(super) fn spare(&self) -> &Arc<Spare> {
        &self.spare
    }
}

impl Drop for Samples {
    fn drop(&mut self) {
        let image = std::mem::replace(&mut self.image, empty());
        self.spare.put(self.id, image);
    }
}

/// The samples of the picture of a source dropped last, if the next
/// picture has not taken them yet.
#[derive(Default)]
pub(super) struct Spare(Mutex<Option<(u64, Image)>>);

impl Spare {
    /// Keeps `image`, the samples of picture `id`, instead of any kept
    /// before: the picture dropped last is the likeliest to be the one
    /// before the next picture's base.
    fn put(&self, id: u64, image: Image) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((id, image));
    }

    /// The samples kept, with the id of the picture they are, if they are
    /// of a `width` x `height` picture; samples of another size are
    /// dropped.
    pub(super) fn take(&self, width: u32, height: u32) -> Option<(u64, Image)> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
        kept.filter(|(_, image)| (image.width, image.height) == (width, height))
    }
}

/// An image of no samples, which allocates nothing.
fn empty() -> Image {
    Image {
        y_plane: BufferStoreMut::Owned(Vec::new()),
        y_stride: 0,
        u_plane: BufferStoreMut::Owned(Vec::new()),
        u_stride: 0,
        v_plane: BufferStoreMut::Owned(Vec::new()),
        v_stride: 0,
        width: 0,
        height: 0,
    }
}
