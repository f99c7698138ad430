// Package django holds no Go: its test runs the Django example site
// (examples/django) with Debian's python3-django against three nodes
// behind round-robin HAProxy.
package django
