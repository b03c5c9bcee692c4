/*
 * The pod sandbox's process for the embedded target's real node (tools/real-node/build.sh builds
 * it statically and packs it as the local pause image): it holds the pod's namespaces, reaps the
 * zombies it inherits as the pod's pid 1, and exits on SIGINT or SIGTERM. Written for this project;
 * it does what the Kubernetes pause container does, nothing more.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    puts("irsa-conformance pause");
    return 0;
  }
  if (getpid() != 1) fputs("pause: not pid 1 (expected as a pod sandbox's first process)\n", stderr);
  struct sigaction stop = {.sa_handler = on_stop};
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &stop, NULL) < 0 || sigaction(SIGTERM, &stop, NULL) < 0 ||
      sigaction(SIGCHLD, &child, NULL) < 0)
    return 1;
  for (;;) pause();
}
