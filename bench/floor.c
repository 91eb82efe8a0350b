/*
 * The floor of the ticker workload: what the kernel's share costs, with no
 * runtime at all. Accepts `clients` HTTP/1.1 connections on 127.0.0.1,
 * answers each with the same event-stream headers and opening chunk that
 * native-sse sends, then, on "go" (a line on stdin), writes `frames`
 * times one ready-framed chunk holding one ~40-byte event to every socket,
 * one write() per socket per turn, exactly the syscalls a perfect SSE server
 * makes. Prints its port first, then, when done, its CPU time in µs.
 *
 * Built and run by bench/run.mjs (cc -O2); not part of the library.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static long cpu_micros(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000L + usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
}

static int write_all(int fd, const char *bytes, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, bytes, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    bytes += n;
    len -= (size_t)n;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: floor CLIENTS FRAMES\n");
    return 2;
  }
  int clients = atoi(argv[1]);
  int frames = atoi(argv[2]);
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int yes = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 4096) < 0) {
    perror("listen");
    return 1;
  }
  socklen_t addr_len = sizeof addr;
  getsockname(listener, (struct sockaddr *)&addr, &addr_len);
  printf("%d\n", ntohs(addr.sin_port));
  fflush(stdout);

  static const char head[] =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
      "X-Accel-Buffering: no\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
      "6\r\n: ok\n\n\r\n";
  int *fds = calloc((size_t)clients, sizeof *fds);
  char request[4096];
  for (int i = 0; i < clients; i++) {
    fds[i] = accept(listener, NULL, NULL);
    if (fds[i] < 0) {
      perror("accept");
      return 1;
    }
    setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    /* The request's head; its bytes are not needed. */
    if (read(fds[i], request, sizeof request) <= 0) return 1;
    if (write_all(fds[i], head, sizeof head - 1) < 0) return 1;
  }
  char line[16];
  if (fgets(line, sizeof line, stdin) == NULL) return 1;

  long start = cpu_micros();
  char chunk[128];
  for (int f = 0; f < frames; f++) {
    /* One ~40-byte event, as the Node servers send it, in one chunk. */
    char event[96];
    int event_len = snprintf(event, sizeof event, "data: tick %06d of the burst workload\n\n", f);
    int chunk_len = snprintf(chunk, sizeof chunk, "%x\r\n%s\r\n", event_len, event);
    for (int i = 0; i < clients; i++) {
      if (write_all(fds[i], chunk, (size_t)chunk_len) < 0) return 1;
    }
  }
  long used = cpu_micros() - start;
  printf("%ld\n", used);
  fflush(stdout);
  /* Keep the sockets open until told to go, so that every byte is read. */
  if (fgets(line, sizeof line, stdin) == NULL) return 0;
  return 0;
}
