// Package systemd runs the host's systemctl for modules that must stop, start or reload a unit around
// their work. systemctl is on every host that runs etcd under systemd and needs no extra dependency.
package systemd

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Systemctl runs `systemctl args...`; the error carries systemctl's own message.
func Systemctl(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Active reports whether the unit is active (running).
func Active(ctx context.Context, unit string) bool {
	return exec.CommandContext(ctx, "systemctl", "is-active", "--quiet", unit).Run() == nil
}

// Unit adds ".service" to a bare service name.
func Unit(name string) string {
	if strings.Contains(name, ".") {
		return name
	}
	return name + ".service"
}
