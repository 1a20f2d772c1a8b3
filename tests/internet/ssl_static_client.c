/* Client of agentmon's tests with OpenSSL linked in statically and its
 * symbols stripped, as Codex's release binary carries its vendored OpenSSL
 * 3: one POST of BODY bytes over TLS, written with SSL_write and read back
 * with SSL_read_ex (the openssl crate's call) until the server closes.
 *
 *   ssl_static_client IP PORT NAME PATH BODY [WAIT_FILE]
 *
 * With WAIT_FILE it connects only once that file exists. The address is
 * numeric: a static glibc program cannot load the resolver's NSS modules.
 * Prints `sent=N received=M`. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char *what)
{
    fprintf(stderr, "ssl_static_client: %s\n", what);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 6)
        return fail("usage: ssl_static_client IP PORT NAME PATH BODY [WAIT_FILE]");
    while (argc > 6 && access(argv[6], F_OK) != 0)
        usleep(10000);
    struct sockaddr_storage addr = {0};
    socklen_t len;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    if (inet_pton(AF_INET, argv[1], &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(atoi(argv[2]));
        len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, argv[1], &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(atoi(argv[2]));
        len = sizeof(*v6);
    } else {
        return fail("not a numeric address");
    }
    int fd = socket(addr.ss_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, len) != 0)
        return fail("connect");
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    SSL_set_tlsext_host_name(ssl, argv[3]);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1)
        return fail("handshake");
    long body = atol(argv[5]);
    char head[512];
    int head_len = snprintf(head, sizeof(head),
                            "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %ld\r\n"
                            "Connection: close\r\n\r\n",
                            argv[4], argv[3], body);
    size_t total = head_len + body;
    char *request = malloc(total);
    memcpy(request, head, head_len);
    memset(request + head_len, 'o', body);
    if (SSL_write(ssl, request, (int)total) != (int)total)
        return fail("write");
    char buf[16384];
    size_t got, received = 0;
    while (SSL_read_ex(ssl, buf, sizeof(buf), &got) == 1)
        received += got;
    printf("sent=%zu received=%zu\n", total, received);
    return 0;
}
