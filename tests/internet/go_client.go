// Go client of agentmon's tests: Go's own resolver and crypto/tls, built
// static and stripped as Go agents ship (windsurf's language server, Crush).
//
//	go_client [-wait FILE] [-http | -h2] NAME PORT PATH:BYTES...
//
// Without -http or -h2: one tls.Dial, one POST of BYTES with
// "Connection: close" written by hand, the reply read to EOF. With -http:
// net/http over HTTP/1.1, one kept-alive connection, a POST per PATH:BYTES,
// each reply read whole; -h2 the same over HTTP/2. -wait: first wait until
// FILE exists (the test's sign that agentmon has probed this process).
package main

import (
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func fail(what string, err error) {
	fmt.Fprintln(os.Stderr, "go_client:", what+":", err)
	os.Exit(1)
}

func main() {
	wait := flag.String("wait", "", "wait until this file exists")
	useHTTP := flag.Bool("http", false, "net/http over HTTP/1.1")
	useH2 := flag.Bool("h2", false, "net/http over HTTP/2")
	flag.Parse()
	args := flag.Args()
	if len(args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: go_client [-wait FILE] [-http | -h2] NAME PORT PATH:BYTES...")
		os.Exit(2)
	}
	name, port := args[0], args[1]
	type post struct {
		path string
		size int
	}
	var posts []post
	for _, a := range args[2:] {
		i := strings.LastIndex(a, ":")
		size, err := strconv.Atoi(a[i+1:])
		if i < 0 || err != nil {
			fmt.Fprintln(os.Stderr, "go_client: want PATH:BYTES, got", a)
			os.Exit(2)
		}
		posts = append(posts, post{a[:i], size})
	}
	for *wait != "" {
		if _, err := os.Stat(*wait); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	conf := &tls.Config{ServerName: name, InsecureSkipVerify: true}
	if !*useHTTP && !*useH2 {
		conn, err := tls.Dial("tcp", net.JoinHostPort(name, port), conf)
		if err != nil {
			fail("dial", err)
		}
		p := posts[0]
		head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", p.path, name, p.size)
		request := append([]byte(head), bytes.Repeat([]byte("g"), p.size)...)
		if _, err := conn.Write(request); err != nil {
			fail("write", err)
		}
		received, err := io.Copy(io.Discard, conn)
		if err != nil {
			fail("read", err)
		}
		fmt.Printf("sent=%d received=%d\n", len(request), received)
		return
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   conf,
		ForceAttemptHTTP2: *useH2,
		MaxConnsPerHost:   1,
	}}
	for _, p := range posts {
		url := "https://" + net.JoinHostPort(name, port) + p.path
		body := bytes.NewReader(bytes.Repeat([]byte("g"), p.size))
		req, err := http.NewRequest("POST", url, body)
		if err != nil {
			fail("request", err)
		}
		req.Header.Set("Content-Type", "application/json")
		// The test server keeps a connection only when asked to.
		req.Header.Set("Connection", "keep-alive")
		resp, err := client.Do(req)
		if err != nil {
			fail("post", err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			fail("read", err)
		}
		fmt.Printf("%s %s %d\n", resp.Proto, p.path, n)
	}
}
