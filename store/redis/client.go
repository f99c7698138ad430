package redisstore

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// URLForms lists the Redis URLs NewClient accepts, for flag help and docs.
const URLForms = "redis://[[user]:password@]host:port[/db] for one server (rediss:// for TLS); " +
	"redis://host:port?addr=host2:port&addr=host3:port for Redis Cluster (any of its nodes, the rest are discovered); " +
	"redis+sentinel://[[user]:password@]sentinel1:26379,sentinel2:26379/<master-name>[/db] for Sentinel " +
	"(rediss+sentinel:// for TLS; the password is the master's, ?sentinel_password= the Sentinels')"

// NewClient returns a client for a Redis URL (URLForms): one server, a
// Redis Cluster, or a master found through Sentinel. go-redis's own
// query options (dial_timeout, pool_size, ...) apply to each form. Every
// call honours its context, so a stuck Redis cannot hold a caller past
// its deadline. go-redis's own retries are off, as they resend after
// errors that may follow a script Redis ran (an append would be delivered
// twice); instead a call waits up to outageWait through a restart or a
// failover, resending only what Redis surely did not run (WaitOutages:
// zero means DefaultOutageWait, negative no wait).
func NewClient(rawURL string, outageWait time.Duration) (redis.UniversalClient, error) {
	var client redis.UniversalClient
	switch kind, u, err := parseURL(rawURL); {
	case err != nil:
		return nil, fmt.Errorf("redisstore: %w", err)
	case kind == sentinelURL:
		opts, err := redis.ParseFailoverURL(u)
		if err != nil {
			return nil, fmt.Errorf("redisstore: %w", err)
		}
		if opts.MasterName == "" {
			return nil, fmt.Errorf("redisstore: a Sentinel URL names its master: redis+sentinel://host:26379/<master-name>")
		}
		opts.ContextTimeoutEnabled, opts.MaxRetries = true, -1
		client = redis.NewFailoverClient(opts)
	case kind == clusterURL:
		opts, err := redis.ParseClusterURL(u)
		if err != nil {
			return nil, fmt.Errorf("redisstore: %w", err)
		}
		opts.ContextTimeoutEnabled, opts.MaxRetries = true, -1
		client = redis.NewClusterClient(opts)
	default:
		opts, err := redis.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("redisstore: %w", err)
		}
		opts.ContextTimeoutEnabled, opts.MaxRetries = true, -1
		client = redis.NewClient(opts)
	}
	WaitOutages(client, outageWait)
	return client, nil
}

type urlKind int

const (
	singleURL urlKind = iota
	clusterURL
	sentinelURL
)

// parseURL tells which deployment rawURL names and returns it in the form
// go-redis parses for it: a redis+sentinel:// URL is rewritten into
// go-redis's own Sentinel form (redis://sentinel1?master_name=m&addr=
// sentinel2, its user info the Sentinels'), which is accepted as is too.
func parseURL(rawURL string) (urlKind, string, error) {
	scheme, _, _ := strings.Cut(rawURL, "://")
	if scheme == "redis+sentinel" || scheme == "rediss+sentinel" {
		s, err := sentinelToGoRedis(rawURL)
		return sentinelURL, s, err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, "", err
	}
	switch u.Scheme {
	case "redis", "rediss":
		q := u.Query()
		switch {
		case q.Has("master_name"):
			return sentinelURL, rawURL, nil
		case q.Has("addr"):
			return clusterURL, rawURL, nil
		}
		return singleURL, rawURL, nil
	}
	return 0, "", fmt.Errorf("unknown scheme %q: want redis, rediss, redis+sentinel or rediss+sentinel", u.Scheme)
}

// defaultSentinelPort is Sentinel's port when a URL's host has none.
const defaultSentinelPort = "26379"

// sentinelToGoRedis rewrites redis+sentinel://[[user]:pw@]s1[:port],s2/
// master[/db]?opts into go-redis's Sentinel form.
func sentinelToGoRedis(rawURL string) (string, error) {
	// The host list is taken out before url.Parse, which refuses a
	// list whose last host has no port.
	scheme, rest, _ := strings.Cut(rawURL, "://")
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority := rest[:end]
	hosts := authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		hosts = authority[at+1:]
		authority = authority[:at+1] + "sentinels"
	} else {
		authority = "sentinels"
	}
	u, err := url.Parse(scheme + "://" + authority + rest[end:])
	if err != nil {
		return "", err
	}
	var addrs []string
	for h := range strings.SplitSeq(hosts, ",") {
		if h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(h, defaultSentinelPort)
		}
		addrs = append(addrs, h)
	}
	if len(addrs) == 0 {
		return "", fmt.Errorf("a Sentinel URL lists at least one Sentinel: %s://host:26379/<master-name>", u.Scheme)
	}
	path := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' })
	if len(path) == 0 || len(path) > 2 {
		return "", fmt.Errorf("a Sentinel URL's path is /<master-name>[/db], not %q", u.Path)
	}
	q := u.Query()
	for _, k := range []string{"master_name", "username", "password"} {
		if q.Has(k) {
			return "", fmt.Errorf("a Sentinel URL gives %s in its path or user info, not as ?%s=", k, k)
		}
	}
	q.Set("master_name", path[0])
	if len(path) == 2 {
		if q.Has("db") {
			return "", fmt.Errorf("a Sentinel URL gives its db once: /%s/%s or ?db=", path[0], path[1])
		}
		q.Set("db", path[1])
	}
	// The user info is the master's (and its replicas'); go-redis reads
	// the Sentinels' from the user info and the master's from the query.
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			q.Set("username", name)
		}
		if pw, ok := u.User.Password(); ok {
			q.Set("password", pw)
		}
	}
	var sentinelUser *url.Userinfo
	if pw := q.Get("sentinel_password"); q.Has("sentinel_password") {
		sentinelUser = url.UserPassword(q.Get("sentinel_username"), pw)
	} else if q.Has("sentinel_username") {
		sentinelUser = url.User(q.Get("sentinel_username"))
	}
	q.Del("sentinel_username")
	q.Del("sentinel_password")
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	out := url.URL{Scheme: strings.TrimSuffix(u.Scheme, "+sentinel"), User: sentinelUser, Host: addrs[0], RawQuery: q.Encode()}
	return out.String(), nil
}
