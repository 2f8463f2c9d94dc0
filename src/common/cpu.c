/*
 * cpu.c — the CPU count. The library sizes its table-building threads by it, the service
 * its worker and split threads, the load generator its replica size; they had each asked
 * sysconf and each handled its failure. The count is of the CPUs online, not those this
 * process may run on (sched_getaffinity) or its cgroup's CPU quota: a container limited
 * by either sees the host's count here, and the service's --threads flag is the way to say
 * otherwise.
 */
#include "common/cpu.h"

#include <unistd.h>

unsigned tok__cpu_count(void)
{
  long n = sysconf(_SC_NPROCESSORS_ONLN); /* -1 when unknown */
  return n < 1 ? 1 : (unsigned)n;
}
