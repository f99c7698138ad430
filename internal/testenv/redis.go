package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RedisServer is a redis-server process owned by one test: killed when the
// test ends, and which the test may stop (SIGSTOP), kill and start again on
// the same port to play an outage.
type RedisServer struct {
	// Addr is the server's host:port.
	Addr string
	// Prefix is a key prefix unique to this server's test (see Prefix).
	Prefix string

	t      testing.TB
	port   int
	conf   string // a config file to start from (Sentinel's), if any
	args   []string
	cmd    *exec.Cmd
	exited chan struct{}
}

// Redis starts a redis-server on a free loopback port (no persistence,
// extra args appended to its command line) and waits until it answers.
func Redis(t testing.TB, args ...string) *RedisServer {
	t.Helper()
	for range 5 {
		if r := RedisOn(t, FreePort(t), args...); r != nil {
			return r
		}
	}
	t.Fatal("testenv: redis-server did not start on any of 5 free ports")
	return nil
}

// RedisOn starts redis-server on port, or returns nil if it exited at once
// (another process took the port between FreePort and the bind).
func RedisOn(t testing.TB, port int, args ...string) *RedisServer {
	t.Helper()
	r := &RedisServer{
		Addr: "127.0.0.1:" + strconv.Itoa(port), Prefix: Prefix(t),
		// A directory of its own (args may name another): a replica's
		// sync or a SAVE writes an RDB file there, never into the package.
		t: t, port: port, args: append([]string{"--dir", t.TempDir()}, args...),
	}
	if !r.Start() {
		return nil
	}
	t.Cleanup(r.Kill)
	return r
}

// URL returns the server's redis:// URL (database 0).
func (r *RedisServer) URL() string { return "redis://" + r.Addr + "/0" }

// Port returns the server's port.
func (r *RedisServer) Port() int { return r.port }

// Pid returns the process id of the running server.
func (r *RedisServer) Pid() int { return r.cmd.Process.Pid }

// Start runs redis-server on the server's port and waits until the process
// it started answers there; false if that process exited first.
func (r *RedisServer) Start() bool {
	r.t.Helper()
	var args []string
	if r.conf != "" {
		args = []string{r.conf, "--sentinel"}
	}
	r.cmd = exec.Command(LookPath(r.t, "redis-server"), append(append(args,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning",
	), r.args...)...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("testenv: start redis-server: %v", err)
	}
	exited := make(chan struct{})
	r.exited = exited
	cmd := r.cmd
	go func() { cmd.Wait(); close(exited) }()
	// Ready when the server on the port answers with our process's pid:
	// an older server on the same port is not ours.
	want := "process_id:" + strconv.Itoa(cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case <-exited:
			return false
		default:
		}
		if info, err := redisInfo(r.Addr, "server"); err == nil && strings.Contains(info, want+"\r\n") {
			return true
		}
	}
	r.t.Fatalf("testenv: redis-server on %s not ready after 10s", r.Addr)
	return false
}

// Kill kills the server (waking it first if it was stopped) and waits until
// it is gone. Killing a dead server does nothing.
func (r *RedisServer) Kill() {
	select {
	case <-r.exited:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGCONT)
	r.cmd.Process.Kill()
	<-r.exited
}

// Signal sends sig to the server (SIGSTOP and SIGCONT freeze and thaw it).
func (r *RedisServer) Signal(sig os.Signal) {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("testenv: signal redis-server: %v", err)
	}
}

// redisInfo sends INFO <section> and returns the reply.
func redisInfo(addr, section string) (string, error) {
	return redisCommand(addr, "INFO", section)
}

// redisCommand sends one command over RESP and returns its reply, a bulk
// or simple string (an error reply is an error). It speaks the protocol
// itself so that this package needs no Redis client.
func redisCommand(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	req := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		req += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	head, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	head = strings.TrimSpace(head)
	switch {
	case strings.HasPrefix(head, "+"):
		return head[1:], nil
	case strings.HasPrefix(head, "-"):
		return "", fmt.Errorf("testenv: %s replied %s", args[0], head[1:])
	case !strings.HasPrefix(head, "$"):
		return "", fmt.Errorf("testenv: %s replied %q", args[0], head)
	}
	n, err := strconv.Atoi(head[1:])
	if err != nil || n < 0 {
		return "", fmt.Errorf("testenv: %s replied %q", args[0], head)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return "", err
	}
	return string(body), nil
}

// LookPath finds a Debian-packaged server binary (redis-server, nats-server,
// haproxy), which may live in an sbin directory that is not on PATH.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/bin/" + name, "/usr/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("testenv: %s not found: run scripts/test, which installs it", name)
	return ""
}
