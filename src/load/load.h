/*
 * load.h — the loaders: they turn files (tiktoken rank files and manifests, Hugging Face
 * tokenizer.json and tokenizer_config.json) into pipeline configurations (internal.h).
 * They run at start-up only and stay out of the request path; the core never calls them.
 */
#ifndef TOK_LOAD_H
#define TOK_LOAD_H

#include "core/internal.h"

/* load/tiktoken.c */
typedef struct tok__manifest {
  char *name;
  char **aliases; /* NULL-terminated, never NULL after a successful parse */
  char *ranks;
  char sha256[65]; /* "" when the manifest gives none */
  uint32_t n_vocab; /* 0 when the manifest gives none */
  char *pattern;
  tok_special_token *special; /* texts are owned */
  size_t n_special;
} tok__manifest;
tok_err tok__manifest_parse(const char *file, const char *text, size_t text_len,
                            tok__manifest *out, tok_error *err);
void tok__manifest_free(tok__manifest *m);
/* Parses a .tiktoken rank file into a model (merging by rank). */
tok_err tok__ranks_parse(const char *file, const char *text, size_t text_len, tok__model **out,
                         tok_error *err);
/* Turns a manifest (consumed: its strings move into the encoding) and its model into an
 * encoding. */
tok_err tok__tiktoken_encoding(tok__manifest *m, tok__model *model, const char *sha256,
                               bool embedded, tok_encoding **out, tok_error *err);

/* load/hf.c: loads a tokenizer.json (and, for a directory, tokenizer_config.json). The
 * model is returned separately for the registry to own. */
tok_err tok__hf_load(const char *name, const char *path, tok_encoding **out_enc,
                     tok__model **out_model, tok_error *err);

/* registry.c: reads a whole file (bounded), for loaders. */
tok_err tok__read_file(const char *path, size_t max_bytes, char **data, size_t *len,
                       tok_error *err);

#endif
