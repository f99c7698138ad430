package main

import "os"

// addr is $ECHO_ADDR, else 127.0.0.1:8081 (the test picks a free port).
func addr() string {
	if a := os.Getenv("ECHO_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:8081"
}
