/* TLS client of `cargo xtask bench` through OpenSSL 3 linked in statically
 * and stripped (as Codex's release binary carries it): HTTP/1.1 POSTs of a
 * fixed size, one at a time, on one keep-alive connection, for SECS seconds,
 * written with SSL_write_ex and read with SSL_read_ex (the openssl crate's
 * calls).
 *
 *   tls_client ADDR PORT SECS REQUEST_BYTES REPLY_BODY_BYTES [WAIT_FILE]
 *
 * With WAIT_FILE it connects only once that file exists (the bench creates
 * it when the probes are attached). Prints `requests=N secs=T bytes=B`. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int fail(const char *what)
{
    fprintf(stderr, "tls_client.c: %s\n", what);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 6)
        return fail("usage: tls_client ADDR PORT SECS REQUEST_BYTES REPLY_BODY_BYTES [WAIT_FILE]");
    double secs = atof(argv[3]);
    size_t size = strtoul(argv[4], NULL, 10), reply_body = strtoul(argv[5], NULL, 10);
    char head[256];
    int head0 = snprintf(head, sizeof(head),
                         "POST /v1/messages HTTP/1.1\r\nHost: api.bench.test\r\nContent-Length: %d\r\n\r\n", 0);
    size_t body = size - head0;
    int digits = snprintf(NULL, 0, "%zu", body);
    body -= digits - 1;
    int head_len = snprintf(head, sizeof(head),
                            "POST /v1/messages HTTP/1.1\r\nHost: api.bench.test\r\nContent-Length: %zu\r\n\r\n", body);
    if (head_len + body != size)
        return fail("request size");
    char *req = malloc(size);
    memcpy(req, head, head_len);
    memset(req + head_len, 'q', body);
    size_t reply = snprintf(NULL, 0, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", reply_body) + reply_body;
    while (argc > 6 && access(argv[6], F_OK) != 0)
        usleep(10000);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1)
        return fail("not an IPv4 address");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
        return fail("connect");
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    SSL_set_tlsext_host_name(ssl, "api.bench.test");
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1)
        return fail("handshake");
    char buf[16384];
    double start = now();
    long n = 0;
    for (;;) {
        size_t done;
        if (SSL_write_ex(ssl, req, size, &done) != 1 || done != size)
            return fail("write");
        for (size_t got = 0; got < reply;) {
            size_t want = reply - got < sizeof(buf) ? reply - got : sizeof(buf);
            if (SSL_read_ex(ssl, buf, want, &done) != 1)
                return fail("read");
            got += done;
        }
        n++;
        if (n % 16 == 0 && now() - start >= secs)
            break;
    }
    double took = now() - start;
    printf("requests=%ld secs=%.6f bytes=%ld\n", n, took, n * (long)size);
    return 0;
}
