package backup

import (
	"context"
	"fmt"
	"os"

	"github.com/etcdops/etcd/pkg/systemd"
)

// StopUnit is a Spec.Quiesce that stops unit for the copy and starts it again afterwards if it was running.
// marker (if set) exists from before the stop until the start: a run killed in between leaves the record that
// the member must be started again (role etcd_backup, lingering).
func StopUnit(units systemd.Units, unit, marker string) func(context.Context) (func() error, error) {
	return func(ctx context.Context) (func() error, error) {
		active, err := units.Active(ctx, unit)
		if err != nil {
			return nil, err
		}
		if !active {
			return func() error { return nil }, nil
		}
		if marker != "" {
			if err := os.WriteFile(marker, nil, 0o600); err != nil {
				return nil, fmt.Errorf("stop_marker: %w (%s was not stopped)", err, unit)
			}
		}
		if err := units.Stop(ctx, unit); err != nil {
			return nil, err
		}
		return func() error {
			if err := units.Start(context.Background(), unit); err != nil {
				return err
			}
			if marker != "" {
				if err := os.Remove(marker); err != nil && !os.IsNotExist(err) {
					return fmt.Errorf("stop_marker: %w (%s runs again)", err, unit)
				}
			}
			return nil
		}, nil
	}
}
