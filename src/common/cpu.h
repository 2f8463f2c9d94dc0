/*
 * cpu.h — how many CPUs there are, counted in one place for the library, the service and
 * the tools (see cpu.c).
 */
#ifndef TOK_CPU_H
#define TOK_CPU_H

/* The CPUs online (sysconf's _SC_NPROCESSORS_ONLN), at least 1. Callers cap it to what
 * their work can use. Thread-safe. */
unsigned tok__cpu_count(void);

#endif
