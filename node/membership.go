package main

import (
	"fmt"
	"log/slog"
	"net"
	"strings"

	sockaddr "github.com/hashicorp/go-sockaddr"

	"github.com/shoal-rt/shoal/cluster"
)

// advertisedHTTP is the address other nodes (and operators) use to reach
// this node's operations endpoints: --advertise-http if set, else the
// address of the listener that serves them (admin or public), with an
// unspecified host (0.0.0.0, ::, empty) replaced by this
// host's private IP, as memberlist picks it for gossip.
func advertisedHTTP(cfg config, listenAddr string) (string, error) {
	if cfg.AdvertiseHTTP != "" {
		return cfg.AdvertiseHTTP, nil
	}
	host, port, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return listenAddr, nil
	}
	priv, err := sockaddr.GetPrivateIP()
	if err != nil || priv == "" {
		return "", fmt.Errorf("--listen %s has no specific host and no private IP was found (%v): set --advertise-http", listenAddr, err)
	}
	return net.JoinHostPort(priv, port), nil
}

// joinCluster returns the node's membership: memberlist when
// --gossip-listen or --join is given, else a static one-node cluster.
func joinCluster(cfg config, self cluster.Member, log *slog.Logger) (cluster.Membership, error) {
	if cfg.GossipListen == "" && cfg.Join == "" {
		return cluster.NewStatic(self), nil
	}
	if cfg.Redis == "" {
		log.Warn("gossip without --redis: each node keeps its own sessions, so they are members of a cluster that shares nothing")
	}
	var seeds []string
	for s := range strings.SplitSeq(cfg.Join, ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	mc := cluster.Config{
		NodeID:   self.ID,
		BindAddr: cfg.GossipListen,
		HTTPAddr: self.HTTPAddr,
		Version:  self.Version,
		Seeds:    seeds,
		Logger:   log,
	}
	if err := cfg.Security.gossip(cfg, &mc, log); err != nil {
		return nil, err
	}
	m, err := cluster.Join(mc)
	if err != nil {
		return nil, err
	}
	log.Info("gossiping", "addr", m.GossipAddr(), "seeds", seeds)
	return m, nil
}
