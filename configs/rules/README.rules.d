Rule files for edgehook: every *.toml file here is loaded (see [rules] files
in /etc/edgehook/edgehook.toml). Examples are in
/usr/share/doc/edgehook/examples/rules/. Check a change with
  edgehook check -c /etc/edgehook/edgehook.toml
and apply it with
  systemctl reload edgehook
