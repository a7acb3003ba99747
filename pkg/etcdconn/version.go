package etcdconn

import "fmt"

// VersionAtLeast compares a server's version string ("3.4.23") with major.minor; false when it
// cannot be read.
func VersionAtLeast(version string, major, minor int) bool {
	var ma, mi int
	if n, _ := fmt.Sscanf(version, "%d.%d", &ma, &mi); n != 2 {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}
