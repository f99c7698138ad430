// Package python holds no Go: its test runs the Python client's tests
// (clients/python/tests) with Debian's python3-django, against a real
// node and Redis, as part of the one test command.
package python
