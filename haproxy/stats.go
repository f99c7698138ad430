package haproxy

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

var statsClient = &http.Client{Timeout: 10 * time.Second}

// ServerStatus reads the statistics page at statsURL (http://host:port, as
// bound with EnvStatsBind) and returns the status HAProxy gives each server
// of Backend: "UP", "DOWN", "MAINT", "UP 1/2" while a check moves it...
func ServerStatus(statsURL string) (map[string]string, error) {
	resp, err := statsClient.Get(statsURL + "/;csv")
	if err != nil {
		return nil, fmt.Errorf("haproxy: statistics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("haproxy: statistics: %s", resp.Status)
	}
	r := csv.NewReader(io.LimitReader(resp.Body, 1<<20))
	r.FieldsPerRecord = -1
	records, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("haproxy: statistics: %w", err)
	}
	if len(records) == 0 {
		return nil, fmt.Errorf("haproxy: statistics: empty")
	}
	header := records[0]
	header[0] = strings.TrimPrefix(header[0], "# ")
	pxname, svname, status := slices.Index(header, "pxname"), slices.Index(header, "svname"), slices.Index(header, "status")
	if pxname < 0 || svname < 0 || status < 0 {
		return nil, fmt.Errorf("haproxy: statistics: unexpected header %v", header)
	}
	out := map[string]string{}
	for _, rec := range records[1:] {
		if len(rec) == len(header) && rec[pxname] == Backend && rec[svname] != "BACKEND" {
			out[rec[svname]] = rec[status]
		}
	}
	return out, nil
}

// UpServers returns the servers of Backend that the statistics page at
// statsURL shows UP (a status starting "UP": "UP 1/2" counts), sorted.
func UpServers(statsURL string) ([]string, error) {
	st, err := ServerStatus(statsURL)
	if err != nil {
		return nil, err
	}
	var up []string
	for name, status := range st {
		if strings.HasPrefix(status, "UP") {
			up = append(up, name)
		}
	}
	slices.Sort(up)
	return up, nil
}
