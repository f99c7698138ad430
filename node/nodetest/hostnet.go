package nodetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// HostNet is a network of hosts on this machine: a bridge whose side on
// the machine is <subnet>.1, and a network namespace per host behind a veth
// pair into it, all removed when the test ends. Taking a host's link down
// makes its address vanish (no refusal, no reset: packets go nowhere), as
// when a container or a machine disappears. It needs root (CAP_NET_ADMIN)
// and iproute2.
type HostNet struct {
	t      testing.TB
	id     string // short, unique per run: in every link and namespace name
	subnet string // first three octets of the /24
	hosts  map[string]string
	order  []string
}

// NewHostNet creates the bridge.
func NewHostNet(t testing.TB) *HostNet {
	t.Helper()
	h := &HostNet{
		t:      t,
		id:     fmt.Sprintf("s%d", os.Getpid()%100000),
		subnet: fmt.Sprintf("10.213.%d", os.Getpid()%250),
		hosts:  map[string]string{},
	}
	br := h.id + "br"
	h.ip("link", "add", br, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", br).Run() })
	h.ip("addr", "add", h.HostIP()+"/24", "dev", br)
	h.ip("link", "set", br, "up")
	return h
}

func (h *HostNet) ip(args ...string) {
	h.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		h.t.Fatalf("nodetest: ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// HostIP is the machine's own address on the bridge.
func (h *HostNet) HostIP() string { return h.subnet + ".1" }

// NS is the network namespace of host name.
func (h *HostNet) NS(name string) string { return h.id + "-" + name }

// IP is the address of host name.
func (h *HostNet) IP(name string) string { return h.hosts[name] }

// AddHost gives name a namespace, a veth into the bridge and the address
// <subnet>.octet, which it returns.
func (h *HostNet) AddHost(name string, octet int) string {
	h.t.Helper()
	ns := h.NS(name)
	h.ip("netns", "add", ns)
	h.t.Cleanup(func() {
		exec.Command("ip", "netns", "del", ns).Run()
		os.RemoveAll(filepath.Join("/etc/netns", ns))
	})
	outer, inner := fmt.Sprintf("%sv%d", h.id, octet), fmt.Sprintf("%si%d", h.id, octet)
	h.ip("link", "add", outer, "type", "veth", "peer", "name", inner)
	h.ip("link", "set", inner, "netns", ns)
	h.ip("link", "set", outer, "master", h.id+"br")
	h.ip("link", "set", outer, "up")
	h.ip("-n", ns, "link", "set", "lo", "up")
	h.ip("-n", ns, "link", "set", inner, "name", "eth0")
	h.ip("-n", ns, "addr", "add", fmt.Sprintf("%s.%d/24", h.subnet, octet), "dev", "eth0")
	h.ip("-n", ns, "link", "set", "eth0", "up")
	h.hosts[name] = fmt.Sprintf("%s.%d", h.subnet, octet)
	h.order = append(h.order, name)
	return h.hosts[name]
}

// SetLink takes host name's link down (up false) or up again.
func (h *HostNet) SetLink(name string, up bool) {
	h.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	h.ip("-n", h.NS(name), "link", "set", "eth0", state)
}

// WriteHosts gives every namespace an /etc/hosts naming every host.
func (h *HostNet) WriteHosts() {
	h.t.Helper()
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n")
	for _, name := range h.order {
		fmt.Fprintf(&b, "%s %s\n", h.hosts[name], name)
	}
	for _, name := range h.order {
		dir := filepath.Join("/etc/netns", h.NS(name))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(b.String()), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
}

// Start runs a program on host name ("ip netns exec" execs it: the process
// is the program itself).
func (h *HostNet) Start(name string, env []string, prog string, args ...string) *Process {
	h.t.Helper()
	return StartEnv(h.t, env, "ip", append([]string{"netns", "exec", h.NS(name), prog}, args...)...)
}
