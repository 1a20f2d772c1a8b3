/* A statically linked musl client for agentmon's tests: resolves a name with
 * musl's own resolver (getaddrinfo), then POSTs N bytes over plain HTTP and
 * reads the reply to EOF.  Prints "sent=<bytes> received=<bytes>".
 *
 *   musl_http HOST PORT PATH BODY_BYTES
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: musl_http HOST PORT PATH BODY_BYTES\n");
        return 2;
    }
    /* IPv4 only: the tests know which (test) country that is. */
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(argv[1], argv[2], &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "musl_http: getaddrinfo %s: %s\n", argv[1], gai_strerror(rc));
        return 1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        perror("musl_http: connect");
        return 1;
    }
    long body = atol(argv[4]);
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %ld\r\nConnection: close\r\n\r\n",
                     argv[3], argv[1], body);
    long sent = 0, received = 0;
    if (write(fd, head, n) != n) return 1;
    sent += n;
    char buf[16384];
    memset(buf, 'm', sizeof buf);
    while (sent - n < body) {
        long chunk = body - (sent - n) < (long)sizeof buf ? body - (sent - n) : (long)sizeof buf;
        long w = write(fd, buf, chunk);
        if (w <= 0) return 1;
        sent += w;
    }
    long r;
    while ((r = read(fd, buf, sizeof buf)) > 0) received += r;
    printf("sent=%ld received=%ld\n", sent, received);
    return 0;
}
