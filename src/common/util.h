/*
 * util.h — small helpers the service and the command line share, written once: the
 * clock, the CPU count, reading a stream, decimal ids, resident memory, token ids written as text, and
 * which tokenizer a model name means.
 */
#ifndef TOKD_UTIL_H
#define TOKD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tok.h"

/* Monotonic seconds. */
double tokd_now(void);

/* The CPUs online (common/cpu.h's tok__cpu_count), at most TOKD_MAX_THREADS. */
#define TOKD_MAX_THREADS 64
unsigned tokd_cpu_count(void);

/* Appends all of f to out (out->limit bounds it: TOK_ELIMIT); TOK_EIO on a read error. */
tok_err tokd_read_stream(FILE *f, tok_buf *out);

/* Writes n in decimal at p (no NUL); returns the number of characters (at most 10). p
 * must have room for 10 bytes: the bytes past the digits may be overwritten. */
size_t tokd_format_u32(char *p, uint32_t n);

/* Resident memory of this process in bytes (/proc/self/statm), 0 when unknown. */
unsigned long long tokd_rss_bytes(void);
/* Resident memory of this process split into anonymous (its own: heap, stacks) and file
 * pages (the executable's and libraries', shared and reclaimable; shmem counted here). */
void tokd_rss_split(unsigned long long *anon, unsigned long long *file);

/* Appends the NAME=PATH entries of a comma-separated list (--tokenizer, TOKD_TOKENIZERS)
 * to *list (copied). Returns 0, or an exit status after printing why (source names the
 * flag or variable). */
int tokd_sources_parse(const char *spec, const char *source, tok_tokenizer_source **list, size_t *n);
void tokd_sources_free(tok_tokenizer_source *list, size_t n);

/* Parses token ids written as text: decimal numbers separated by spaces, tabs, newlines
 * or commas, optionally inside [ ]. Appends to *ids (grown with realloc; the caller frees),
 * at most max_ids of them. Returns TOK_OK; TOK_EINVAL with *bad_pos at the offending byte
 * (not a number, or 2^32 and above); TOK_ELIMIT past max_ids; TOK_ENOMEM. */
tok_err tokd_parse_id_text(const char *s, size_t len, size_t max_ids, uint32_t **ids, size_t *n,
                           size_t *bad_pos);

/* The tokenizer name a model name means: an OpenAI model's encoding (tiktoken's rules),
 * otherwise the name itself (the NAME of a --tokenizer). */
const char *tokd_model_to_name(const char *model);

/* The directory of the backtracking tables' cache (tok_load_opts.cache_dir): `given` (a
 * flag or TOKD_CACHE_DIR) when set, else $XDG_CACHE_HOME/tokd, else $HOME/.cache/tokd;
 * NULL for "off" or when there is no home. Written into buf (cap bytes). */
const char *tokd_cache_dir(const char *given, char *buf, size_t cap);

#endif
