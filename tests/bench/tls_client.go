// TLS client of `cargo xtask bench` through Go's crypto/tls (as Crush and
// Windsurf's language server are built): HTTP/1.1 POSTs of a fixed size,
// one at a time, on one keep-alive connection, for SECS seconds.
//
//	tls_client ADDR PORT SECS REQUEST_BYTES REPLY_BODY_BYTES [WAIT_FILE]
//
// With WAIT_FILE it connects only once that file exists (the bench creates
// it when the probes are attached). Prints `requests=N secs=T bytes=B`.
package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

func number(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tls_client.go:", err)
		os.Exit(2)
	}
	return n
}

func main() {
	if len(os.Args) < 6 {
		fmt.Fprintln(os.Stderr, "usage: tls_client ADDR PORT SECS REQUEST_BYTES REPLY_BODY_BYTES [WAIT_FILE]")
		os.Exit(2)
	}
	secs, err := strconv.ParseFloat(os.Args[3], 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tls_client.go:", err)
		os.Exit(2)
	}
	size, replyBody := number(os.Args[4]), number(os.Args[5])
	head := func(n int) string {
		return fmt.Sprintf("POST /v1/messages HTTP/1.1\r\nHost: api.bench.test\r\nContent-Length: %d\r\n\r\n", n)
	}
	body := size - len(head(0))
	body -= len(strconv.Itoa(body)) - 1
	req := []byte(head(body) + strings.Repeat("q", body))
	if len(req) != size {
		fmt.Fprintf(os.Stderr, "tls_client.go: request is %d bytes, not %d\n", len(req), size)
		os.Exit(2)
	}
	reply := make([]byte, len(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", replyBody))+replyBody)
	for len(os.Args) > 6 {
		if _, err := os.Stat(os.Args[6]); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	conf := &tls.Config{ServerName: "api.bench.test", InsecureSkipVerify: true}
	conn, err := tls.Dial("tcp", net.JoinHostPort(os.Args[1], os.Args[2]), conf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tls_client.go:", err)
		os.Exit(1)
	}
	start := time.Now()
	n := 0
	for {
		if _, err := conn.Write(req); err != nil {
			fmt.Fprintln(os.Stderr, "tls_client.go: write:", err)
			os.Exit(1)
		}
		if _, err := io.ReadFull(conn, reply); err != nil {
			fmt.Fprintln(os.Stderr, "tls_client.go: read:", err)
			os.Exit(1)
		}
		n++
		if n%16 == 0 && time.Since(start).Seconds() >= secs {
			break
		}
	}
	fmt.Printf("requests=%d secs=%.6f bytes=%d\n", n, time.Since(start).Seconds(), n*len(req))
	conn.Close()
}
