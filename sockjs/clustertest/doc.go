// Package clustertest holds the tests of sockjs on the real backends:
// nodes on store/redis and bus/nats, several in one process as a cluster
// of processes would be, and the benchmarks that compare them with the
// in-memory store and bus. It sits above sockjs and the backends, so that
// sockjs's own tests (memory store and bus) import no backend; it has no
// code but its tests.
package clustertest
