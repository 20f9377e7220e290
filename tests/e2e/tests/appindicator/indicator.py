"""A tray item made with libayatana-appindicator, as Tauri's tray icon is
on Linux: icons are PNG files in a directory of their own (argv[1]), the
menu is a GTK menu exported over dbusmenu. Pause shows the recording icon;
Quit exits. Run by tests/appindicator.rs under Xvfb on a private bus."""

import sys
import gi
gi.require_version('Gtk', '3.0')
gi.require_version('AyatanaAppIndicator3', '0.1')
from gi.repository import Gtk, AyatanaAppIndicator3 as AI

icons = sys.argv[1]
ind = AI.Indicator.new('deskrec-e2e', 'deskrec-idle', AI.IndicatorCategory.APPLICATION_STATUS)
ind.set_icon_theme_path(icons)
ind.set_icon_full('deskrec-idle', 'Idle')
ind.set_title('Deskrec')
ind.set_status(AI.IndicatorStatus.ACTIVE)
menu = Gtk.Menu()
pause = Gtk.MenuItem.new_with_mnemonic('_Pause recording')
def on_pause(_):
    print('clicked', flush=True)
    ind.set_icon_full('deskrec-recording', 'Recording')
pause.connect('activate', on_pause)
menu.append(pause)
sign_in = Gtk.MenuItem.new_with_label('Sign in')
sign_in.set_sensitive(False)
menu.append(sign_in)
menu.append(Gtk.SeparatorMenuItem())
quit_item = Gtk.MenuItem.new_with_label('Quit')
quit_item.connect('activate', lambda _: Gtk.main_quit())
menu.append(quit_item)
menu.show_all()
ind.set_menu(menu)
print('ready', flush=True)
Gtk.main()
