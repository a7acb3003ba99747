// Package systemd drives the host's systemd for modules that stop, start or restart a unit around
// their work, start a transient unit, or write runtime drop-ins: over D-Bus with go-systemd (systemd's
// private socket as root, else the system bus), waiting for each job's result, never by parsing
// systemctl's output.
package systemd

import (
	"fmt"
	"strings"
)

// unitTypes are the suffixes systemd knows (systemd.unit(5)).
var unitTypes = map[string]bool{"service": true, "socket": true, "device": true, "mount": true, "automount": true,
	"swap": true, "target": true, "path": true, "timer": true, "slice": true, "scope": true}

// UnitName returns the unit name for name, adding ".service" when name has no known unit suffix
// ("etcd" → "etcd.service"). It refuses anything that is not a valid systemd unit name: empty, longer
// than 255 bytes, holding '/' or "..", characters other than ASCII letters, digits and ":-_.\@", or a
// '@' that is not a template's NAME@INSTANCE. A unit name ends up in file paths (drop-in directories),
// so "../../../tmp/x" must never get that far.
func UnitName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("the unit name is empty; name a systemd unit such as etcd.service")
	}
	full := name
	if i := strings.LastIndexByte(name, '.'); i < 0 || !unitTypes[name[i+1:]] {
		full = name + ".service"
	}
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%q is not a valid systemd unit name (%s); use a name such as etcd.service", name, why)
	}
	if len(full) > 255 {
		return bad("longer than 255 characters")
	}
	if strings.Contains(name, "/") {
		return bad("it holds '/'")
	}
	if strings.Contains(name, "..") {
		return bad(`it holds ".."`)
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(":-_.\\@", r):
		default:
			return bad(fmt.Sprintf("character %q is not allowed", r))
		}
	}
	prefix := full[:strings.LastIndexByte(full, '.')]
	if prefix == "" || strings.HasPrefix(prefix, ".") {
		return bad("it has no name before the suffix")
	}
	if at := strings.Count(prefix, "@"); at > 1 || at == 1 && strings.HasPrefix(prefix, "@") {
		return bad("a template name is NAME@INSTANCE")
	}
	return full, nil
}
