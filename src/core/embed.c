/*
 * embed.c — index of the vocabulary files that embed.S builds into the binary.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/internal.h"

#define EMBEDDED_FILES(X)                                                                     \
  X(r50k_base_tiktoken, "r50k_base.tiktoken")                                                 \
  X(p50k_base_tiktoken, "p50k_base.tiktoken")                                                 \
  X(cl100k_base_tiktoken, "cl100k_base.tiktoken")                                             \
  X(o200k_base_tiktoken, "o200k_base.tiktoken")                                               \
  X(r50k_base_manifest, "r50k_base.manifest")                                                 \
  X(p50k_base_manifest, "p50k_base.manifest")                                                 \
  X(p50k_edit_manifest, "p50k_edit.manifest")                                                 \
  X(cl100k_base_manifest, "cl100k_base.manifest")                                             \
  X(o200k_base_manifest, "o200k_base.manifest")

#define DECLARE(sym, name) extern const char tok__embed_##sym##_start[], tok__embed_##sym##_end[];
EMBEDDED_FILES(DECLARE)
#undef DECLARE

static const char *const ENCODING_NAMES[] = {"r50k_base", "p50k_base", "p50k_edit",
                                             "cl100k_base", "o200k_base", NULL};

const char *const *tok_embedded_names(void) { return ENCODING_NAMES; }

bool tok__embedded_find(const char *name, tok__embedded_file *out)
{
  /* an empty entry is a file this build leaves out (embed.S: the rank files) */
#define FIND(sym, file)                                                                       \
  if (strcmp(name, file) == 0) {                                                              \
    *out = (tok__embedded_file){file, tok__embed_##sym##_start,                               \
                                (size_t)(tok__embed_##sym##_end - tok__embed_##sym##_start)}; \
    return out->len > 0;                                                                      \
  }
  EMBEDDED_FILES(FIND)
#undef FIND
  return false;
}

void tok__embedded_release(const tok__embedded_file *f)
{
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return;
  uintptr_t start = ((uintptr_t)f->data + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
  uintptr_t end = ((uintptr_t)f->data + f->len) & ~((uintptr_t)page - 1);
  /* The pages are a private, read-only mapping of the executable: dropping them frees
   * memory, and touching them again would simply read them back from the file. */
  if (end > start) (void)madvise((void *)start, end - start, MADV_DONTNEED);
}
