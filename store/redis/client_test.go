package redisstore

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestSentinelURL: every Sentinel form ends as the FailoverOptions it
// says: the Sentinels (default port 26379), the master's name, db and
// password, and the Sentinels' own password apart.
func TestSentinelURL(t *testing.T) {
	for _, tc := range []struct {
		url                    string
		sentinels              []string
		master                 string
		db                     int
		user, pw               string
		sentinelUser, sentinel string
		tls                    bool
	}{
		{url: "redis+sentinel://127.0.0.1:26379/mymaster", sentinels: []string{"127.0.0.1:26379"}, master: "mymaster"},
		{url: "redis+sentinel://s1,s2:26380,s3/m/2", sentinels: []string{"s1:26379", "s2:26380", "s3:26379"}, master: "m", db: 2},
		{url: "redis+sentinel://:secret@s1:1,s2:2/m?db=3&sentinel_password=spw", sentinels: []string{"s1:1", "s2:2"},
			master: "m", db: 3, pw: "secret", sentinel: "spw"},
		{url: "rediss+sentinel://app:pw@s1/m?sentinel_username=su&sentinel_password=sp&dial_timeout=2s",
			sentinels: []string{"s1:26379"}, master: "m", user: "app", pw: "pw", sentinelUser: "su", sentinel: "sp", tls: true},
		// go-redis's own form, user info the Sentinels'.
		{url: "redis://:spw@s1:26379/1?master_name=m&addr=s2:26379&password=pw", sentinels: []string{"s1:26379", "s2:26379"},
			master: "m", db: 1, pw: "pw", sentinel: "spw"},
	} {
		kind, u, err := parseURL(tc.url)
		if err != nil || kind != sentinelURL {
			t.Errorf("%s: kind %d, %v; want a Sentinel URL", tc.url, kind, err)
			continue
		}
		o, err := redis.ParseFailoverURL(u)
		if err != nil {
			t.Errorf("%s -> %s: %v", tc.url, u, err)
			continue
		}
		if len(o.SentinelAddrs) != len(tc.sentinels) {
			t.Errorf("%s: sentinels %v, want %v", tc.url, o.SentinelAddrs, tc.sentinels)
			continue
		}
		for i, a := range tc.sentinels {
			if o.SentinelAddrs[i] != a {
				t.Errorf("%s: sentinels %v, want %v", tc.url, o.SentinelAddrs, tc.sentinels)
			}
		}
		if o.MasterName != tc.master || o.DB != tc.db || o.Username != tc.user || o.Password != tc.pw ||
			o.SentinelUsername != tc.sentinelUser || o.SentinelPassword != tc.sentinel || (o.TLSConfig != nil) != tc.tls {
			t.Errorf("%s: master %q db %d user %q pw %q sentinel user %q pw %q tls %v", tc.url, o.MasterName, o.DB,
				o.Username, o.Password, o.SentinelUsername, o.SentinelPassword, o.TLSConfig != nil)
		}
	}
}

// TestURLKinds: a URL's form picks the client, and a malformed one says
// what is wrong rather than connecting somewhere else.
func TestURLKinds(t *testing.T) {
	for url, want := range map[string]urlKind{
		"redis://127.0.0.1:6379/0":                   singleURL,
		"rediss://:pw@redis.example:6380/1":          singleURL,
		"redis://h1:7000?addr=h2:7000&addr=h3:7000":  clusterURL,
		"redis://s1:26379?master_name=m":             sentinelURL,
		"redis+sentinel://s1:26379,s2:26379/primary": sentinelURL,
	} {
		if kind, _, err := parseURL(url); err != nil || kind != want {
			t.Errorf("%s: kind %d, %v; want %d", url, kind, err, want)
		}
	}
	for _, bad := range []string{
		"http://127.0.0.1:6379",
		"redis+sentinel://s1:26379",           // no master
		"redis+sentinel:///m",                 // no Sentinel
		"redis+sentinel://s1/m/1/2",           // path too long
		"redis+sentinel://s1/m/1?db=2",        // db twice
		"redis+sentinel://s1/m?password=x",    // the master's password belongs in the user info
		"redis+sentinel://s1/m?master_name=n", // the master belongs in the path
	} {
		if _, err := NewClient(bad, -1); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
