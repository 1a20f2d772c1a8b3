// Go client of agentmon's tests: Go's own resolver and crypto/tls, built
// static and stripped as Go agents ship (windsurf's language server, Crush).
// Connects over TLS with SNI, POSTs N bytes and reads the reply to EOF.
//
//	go_client NAME PORT PATH BODY_BYTES
package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: go_client NAME PORT PATH BODY_BYTES")
		os.Exit(2)
	}
	name, port, path := os.Args[1], os.Args[2], os.Args[3]
	size, err := strconv.Atoi(os.Args[4])
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_client: body:", err)
		os.Exit(2)
	}
	conf := &tls.Config{ServerName: name, InsecureSkipVerify: true}
	conn, err := tls.Dial("tcp", net.JoinHostPort(name, port), conf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_client:", err)
		os.Exit(1)
	}
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", path, name, size)
	request := append([]byte(head), bytes.Repeat([]byte("g"), size)...)
	if _, err := conn.Write(request); err != nil {
		fmt.Fprintln(os.Stderr, "go_client: write:", err)
		os.Exit(1)
	}
	received, err := io.Copy(io.Discard, conn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go_client: read:", err)
		os.Exit(1)
	}
	fmt.Printf("sent=%d received=%d\n", len(request), received)
}
