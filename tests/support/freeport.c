/* SPDX-License-Identifier: MIT */
/* freeport -- print a TCP port on 127.0.0.1 that is free right now.
 *
 * Binds port 0 so the kernel picks an unused port, prints it and exits (the `empty_port`
 * idea). The port is free only until someone else binds it, so callers must retry when a
 * server then fails to bind. Exit status: 0 with the port on stdout, 1 with a reason on stderr.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int
main(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) {
        perror("freeport: socket");
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        perror("freeport: bind");
        close(fd);
        return 1;
    }
    /* Closed without listen(), so no TIME_WAIT keeps the port from the server that binds it next. */
    close(fd);
    if (printf("%u\n", (unsigned)ntohs(sa.sin_port)) < 0 || fflush(stdout) != 0)
        return 1;
    return 0;
}
