/*
 * main.c — the `tokd` command: encode, decode, count and bench on the command line, and
 * serve/health for the HTTP service (server.c).
 *
 * Exit status: 0 success; 2 bad usage or bad input (invalid UTF-8, unknown id, unknown
 * encoding); 1 anything else (I/O, out of memory).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tok_chat.h"
#include "cli/cli.h"
#include "tok.h"
#include "common/options.h"
#include "common/util.h"

#define MAX_STDIN ((size_t)1 << 30)

typedef struct cli_opts {
  const char *encoding;
  const char *model;
  const char *vocab_dir;
  const char *allowed;
  tok_tokenizer_source *tokenizers;
  size_t n_tokenizers;
  bool disallowed;
  bool lossy;
  bool add_special;
  bool skip_special;
  bool bytes;
  bool render_only;
  bool chat_bench;
  const char *chat_template;
  double seconds;
  unsigned threads; /* 0: the default (encode, count: the online CPUs; bench: 1) */
  size_t slices;    /* bench: encode each file as consecutive texts of at most this many bytes */
  char **files;
  int n_files;
} cli_opts;

/* ---------------------------------------------------------------------------------------
 * The options of encode, decode, count, bench, encodings and chat, in one table: each row
 * gives the flag, its short letter, its argument's name, its environment variable, what
 * it sets and its help text; getopt_long's array, the environment reads and the checks of
 * the values are made from it by common/options.c (as for `serve`'s settings in
 * serve/config.c), and the help text below. A flag beats its variable.
 */
static int parse_sources(void *settings, const char *value, const char *source)
{
  cli_opts *o = settings;
  return tokd_sources_parse(value, source, &o->tokenizers, &o->n_tokenizers);
}

static int parse_seconds(void *settings, const char *value, const char *source)
{
  double d = strtod(value, NULL);
  if (!(d > 0 && d < 3600)) {
    fprintf(stderr, "tokd: %s must be in (0, 3600)\n", source);
    return 2;
  }
  ((cli_opts *)settings)->seconds = d;
  return 0;
}

#define OFF(field) offsetof(cli_opts, field)
static const tokd_option OPTIONS[] = {
    {"encoding", 'e', "NAME", NULL, TOKD_OPT_STR, OFF(encoding), 0, 0, NULL,
     "r50k_base (gpt2), p50k_base, p50k_edit, cl100k_base (default), o200k_base, a custom "
     "encoding from --vocab-dir, or the NAME of a --tokenizer"},
    {"tokenizer", 't', "NAME=PATH", "TOKD_TOKENIZERS", TOKD_OPT_CUSTOM, OFF(tokenizers), 0, 0, parse_sources,
     "a Hugging Face tokenizer.json, or a model directory holding one (tokenizer_config.json "
     "beside it is applied as transformers does); repeatable, and the variable takes a comma list"},
    {"model", 'm', "NAME", NULL, TOKD_OPT_STR, OFF(model), 0, 0, NULL,
     "pick the encoding of an OpenAI model (gpt-4o, gpt-3.5-turbo, ...)"},
    {"vocab-dir", 0, "DIR", "TOKD_VOCAB_DIR", TOKD_OPT_STR, OFF(vocab_dir), 0, 0, NULL,
     "load DIR/*.manifest and their rank files instead of the built-in vocabularies"},
    {"allowed-special", 0, "all|none|TOKEN[,TOKEN...]", NULL, TOKD_OPT_STR, OFF(allowed), 0, 0, NULL,
     "special-token texts that encode to their ids (default: none for tiktoken encodings, "
     "like tiktoken's encode_ordinary; all for Hugging Face tokenizers, as they do)"},
    {"disallowed-special", 0, NULL, NULL, TOKD_OPT_FLAG, OFF(disallowed), 0, 0, NULL,
     "fail (exit 2) when the text contains a special token that is not allowed, like "
     "tiktoken's encode() default"},
    {"add-special-tokens", 0, NULL, NULL, TOKD_OPT_FLAG, OFF(add_special), 0, 0, NULL,
     "encode/count: add the tokenizer's BOS/EOS (its post-processor)"},
    {"skip-special-tokens", 0, NULL, NULL, TOKD_OPT_FLAG, OFF(skip_special), 0, 0, NULL, "decode: leave special tokens out"},
    {"bytes", 0, NULL, NULL, TOKD_OPT_FLAG, OFF(bytes), 0, 0, NULL,
     "decode: write the exact bytes (the default for tiktoken encodings; Hugging Face "
     "tokenizers write their decoder's text)"},
    {"lossy", 0, NULL, NULL, TOKD_OPT_FLAG, OFF(lossy), 0, 0, NULL,
     "encode/count: replace invalid UTF-8 with U+FFFD instead of failing; decode: replace "
     "invalid UTF-8 in the output with U+FFFD"},
    {"seconds", 0, "S", NULL, TOKD_OPT_CUSTOM, OFF(seconds), 0, 3600, parse_seconds, "bench: time per file (default 1)"},
    {"slices", 0, "BYTES", NULL, TOKD_OPT_SIZE, OFF(slices), 4, 1ull << 30, NULL,
     "bench: encode each file as consecutive texts of at most BYTES (cut between characters), "
     "one call each, as a server sees a stream of requests; the first pass over them is the "
     "figure for text never seen before"},
    {"threads", 'j', "N", NULL, TOKD_OPT_UINT, OFF(threads), 1, TOKD_MAX_THREADS, NULL,
     "encode, count, bench: cut a text of 512 KiB or more at spaces between words and encode "
     "the parts on N threads, with the same result (byte-level BPE tokenizers: the OpenAI "
     "encodings, Llama 3, Qwen, DeepSeek-V3, GPT-OSS; default: the online CPUs for encode "
     "and count, 1 for bench)"},
    {"chat-template", 0, "FILE", NULL, TOKD_OPT_STR, OFF(chat_template), 0, 0, NULL,
     "chat: use this Jinja template instead of the model's"},
    {"render-only", 0, NULL, NULL, TOKD_OPT_FLAG, OFF(render_only), 0, 0, NULL, "chat: print the rendered text instead of the ids"},
    {"bench", 0, NULL, NULL, TOKD_OPT_FLAG, OFF(chat_bench), 0, 0, NULL,
     "chat: render (and encode) repeatedly for --seconds; print the microseconds per "
     "conversation as JSON"},
    {"help", 'h', NULL, NULL, TOKD_OPT_HELP, 0, 0, 0, NULL, "this text"},
};
#undef OFF
#define N_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

static const char USAGE_HEAD[] =
    "usage: tokd COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  serve                 run the HTTP service (see `tokd serve --help`)\n"
    "  health                probe a running server's /ready; exit 0 when ready\n"
    "  encode                read UTF-8 text on stdin, print token ids separated by spaces\n"
    "  decode                read whitespace-separated ids on stdin, write their bytes\n"
    "  count                 read UTF-8 text on stdin, print the number of tokens\n"
    "  bench FILE...         single-thread in-process encode throughput per file\n"
    "  encodings             list the encodings that would be loaded\n"
    "  chat                  read a chat request (JSON, as vLLM's /tokenize with messages) on\n"
    "                        stdin, render the model's chat template, print the token ids\n"
    "\n"
    "Options of encode, decode, count, bench, encodings, chat:\n";
static const char USAGE_TAIL[] =
    "\n"
    "Invalid UTF-8 input makes encode and count exit with status 2 and name the byte offset.\n";

static void print_usage(FILE *out)
{
  fputs(USAGE_HEAD, out);
  tokd_options_print(out, OPTIONS, N_OPTIONS);
  fputs(USAGE_TAIL, out);
}

static int die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int die(int status, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("tokd: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return status;
}

/* 2 for what the user can fix in the input or arguments, 1 for the rest */
static int status_of(tok_err code)
{
  switch (code) {
  case TOK_EINVAL: case TOK_EUTF8: case TOK_EUNKNOWN_ENCODING: case TOK_EUNKNOWN_TOKEN:
  case TOK_EUNKNOWN_SPECIAL: case TOK_EDISALLOWED_SPECIAL: case TOK_ELIMIT:
  case TOK_ETEMPLATE: case TOK_ERENDER:
    return 2;
  default:
    return 1;
  }
}

static int parse_opts(int argc, char **argv, cli_opts *o)
{
  *o = (cli_opts){.seconds = 1.0};
  bool given[N_OPTIONS] = {false};
  int rest, rc = tokd_options_flags(OPTIONS, N_OPTIONS, o, argc, argv, given, &rest, "`tokd --help`");
  if (rc == -1) {
    print_usage(stdout);
    exit(0);
  }
  /* then the variables of what no flag set */
  if (!rc) rc = tokd_options_env(OPTIONS, N_OPTIONS, o, given);
  if (rc) return rc;
  o->files = argv + rest;
  o->n_files = argc - rest;
  if (o->model) {
    /* the same rule as the server's "model": an OpenAI model's encoding, else a tokenizer */
    const char *enc = tokd_model_to_name(o->model);
    bool known = enc != o->model;
    for (size_t i = 0; i < o->n_tokenizers && !known; i++) known = !strcmp(o->tokenizers[i].name, enc);
    if (!known) return die(2, "unknown model \"%s\"; use --encoding, or name a --tokenizer", o->model);
    if (o->encoding && strcmp(o->encoding, enc) != 0)
      return die(2, "--model %s uses %s, but --encoding says %s", o->model, enc, o->encoding);
    o->encoding = enc;
  }
  if (!o->encoding) o->encoding = o->n_tokenizers ? o->tokenizers[0].name : "cl100k_base";
  return 0;
}

static int read_all(FILE *f, tok_buf *buf)
{
  buf->limit = MAX_STDIN;
  tok_err rc = tokd_read_stream(f, buf);
  if (rc == TOK_ELIMIT) return die(2, "input larger than 1 GiB");
  if (rc == TOK_ENOMEM) return die(1, "out of memory");
  if (rc != TOK_OK) return die(1, "read error: %s", strerror(errno));
  return 0;
}

typedef struct loaded {
  tok_registry *reg;
  const tok_encoding *enc;
  tok_scratch *scratch;
  tok_scratch *helpers[TOKD_MAX_THREADS];
  tok_split split; /* threads - 1 helpers */
} loaded;

/* Loads only what the command uses: the named --tokenizer, or the named tiktoken encoding. */
static int load(const cli_opts *o, loaded *l)
{
  tok_error err;
  char cache[4096];
  const char *cache_dir = tokd_cache_dir(getenv("TOKD_CACHE_DIR"), cache, sizeof cache);
  tok_load_opts lo = {.vocab_dir = o->vocab_dir, .encodings = o->encoding};
  for (size_t i = 0; i < o->n_tokenizers; i++)
    if (!strcmp(o->tokenizers[i].name, o->encoding)) {
      lo = (tok_load_opts){.encodings = "none", .tokenizers = &o->tokenizers[i], .n_tokenizers = 1,
                           .cache_dir = cache_dir};
      break;
    }
  if (tok_registry_load(&lo, &l->reg, &err) != TOK_OK)
    return die(status_of(err.code), "%s", err.detail);
  const char *refused = tok_registry_cache_refused(l->reg);
  if (refused) fprintf(stderr, "tokd: table cache off: %s\n", refused);
  l->enc = tok_registry_find(l->reg, o->encoding, strlen(o->encoding));
  if (!(l->scratch = tok_scratch_new(NULL))) return die(1, "out of memory");
  return 0;
}

/* The helper scratches of --threads (default: `dflt`). */
static int load_helpers(const cli_opts *o, loaded *l, unsigned dflt)
{
  unsigned n = o->threads ? o->threads : dflt;
  if (n > TOKD_MAX_THREADS) n = TOKD_MAX_THREADS;
  for (unsigned i = 0; i + 1 < n; i++)
    if (!(l->helpers[i] = tok_scratch_new(NULL))) return die(1, "out of memory");
  l->split = (tok_split){.helpers = l->helpers, .n_helpers = n ? n - 1 : 0};
  return 0;
}

static void unload(loaded *l)
{
  tok_scratch_free(l->scratch);
  for (unsigned i = 0; i < l->split.n_helpers; i++) tok_scratch_free(l->helpers[i]);
  tok_registry_free(l->reg);
}

/* Reads stdin as text: validated, or repaired with --lossy. */
static int read_text(const cli_opts *o, tok_buf *text)
{
  tok_buf raw = {0};
  int rc = read_all(stdin, &raw);
  if (rc) {
    tok_buf_free(&raw);
    return rc;
  }
  size_t bad;
  if (tok_utf8_valid(raw.data, raw.len, &bad)) {
    *text = raw;
    return 0;
  }
  if (!o->lossy) {
    tok_buf_free(&raw);
    return die(2, "invalid UTF-8 at byte offset %zu (use --lossy to replace it with U+FFFD)",
               bad);
  }
  *text = (tok_buf){.limit = MAX_STDIN * 2};
  tok_err e = tok_utf8_append_lossy(text, raw.data, raw.len);
  tok_buf_free(&raw);
  return e == TOK_OK ? 0 : die(1, "%s", tok_err_message(e));
}

static int encode_opts(const cli_opts *o, const tok_encoding *enc, tok_special_set *set,
                       tok_encode_opts *opts)
{
  *opts = (tok_encode_opts){.check_disallowed = o->disallowed, .add_special_tokens = o->add_special};
  if (o->allowed) {
    tok_error err;
    if (tok_special_set_parse(enc, o->allowed, strlen(o->allowed), set, &err) != TOK_OK)
      return die(2, "--allowed-special: %s", err.detail);
    opts->allowed_special = set;
  }
  return 0;
}

/* Prints ids separated by spaces and one newline, formatted in buf. */
static int print_ids(const uint32_t *ids, size_t n, tok_buf *buf)
{
  if (tok_buf_reserve(buf, n * 11 + 1) != TOK_OK) return die(1, "out of memory");
  for (size_t i = 0; i < n; i++) {
    if (i) buf->data[buf->len++] = ' ';
    buf->len += tokd_format_u32(buf->data + buf->len, ids[i]);
  }
  buf->data[buf->len++] = '\n';
  fwrite(buf->data, 1, buf->len, stdout);
  return 0;
}

#define CLI_WARM_BYTES ((size_t)1 << 20)

static int cmd_encode_or_count(const cli_opts *o, bool count_only)
{
  loaded l = {0};
  tok_buf text = {0}, out = {0};
  tok_special_set set;
  tok_encode_opts opts;
  int rc = load(o, &l);
  if (!rc) rc = load_helpers(o, &l, tokd_cpu_count());
  if (!rc) rc = encode_opts(o, l.enc, &set, &opts);
  opts.split = &l.split;
  if (!rc) rc = read_text(o, &text);
  /* A Hugging Face model's backtracking tables (the built-in vocabularies bring theirs)
   * cost 25-175 ms to build: worth it from about a megabyte, where the heap merger would
   * take longer on text with long pieces (CJK, Cyrillic) than building does. */
  if (!rc && text.len >= CLI_WARM_BYTES) tok_registry_warm(l.reg);
  if (!rc) {
    tok_error err;
    tok_encode_result res;
    size_t n = 0;
    tok_err e = count_only ? tok_count(l.enc, l.scratch, text.data, text.len, &opts, &n, NULL, &err)
                           : tok_encode(l.enc, l.scratch, text.data, text.len, &opts, &res, &err);
    if (e != TOK_OK) {
      rc = die(status_of(e), "%s", err.detail);
    } else if (count_only) {
      printf("%zu\n", n);
    } else {
      rc = print_ids(res.ids, res.len, &out);
    }
  }
  tok_buf_free(&text);
  tok_buf_free(&out);
  unload(&l);
  if (!rc && fflush(stdout) != 0) rc = die(1, "write error: %s", strerror(errno));
  return rc;
}

static int cmd_decode(const cli_opts *o)
{
  loaded l = {0};
  tok_buf in = {0}, bytes = {.limit = MAX_STDIN * 4}, lossy = {.limit = MAX_STDIN * 4};
  uint32_t *ids = NULL;
  size_t n = 0, bad = 0;
  int rc = load(o, &l);
  if (!rc) rc = read_all(stdin, &in);
  if (!rc) {
    tok_err e = tokd_parse_id_text(in.data, in.len, SIZE_MAX, &ids, &n, &bad);
    if (e == TOK_ENOMEM) rc = die(1, "out of memory");
    else if (e != TOK_OK) rc = die(2, "input byte %zu: expected a token id (a decimal number below 2^32)", bad);
  }
  if (!rc) {
    tok_error err;
    tok_decode_opts dopts = {.skip_special_tokens = o->skip_special};
    /* tiktoken encodings write their bytes; Hugging Face tokenizers their decoder's text */
    bool text = tok_encoding_get_info(l.enc)->kind == TOK_KIND_HUGGINGFACE && !o->bytes;
    tok_err e = text ? tok_decode_text(l.enc, l.scratch, ids, n, &dopts, &bytes, &err)
                     : tok_decode_bytes(l.enc, l.scratch, ids, n, &dopts, &bytes, &err);
    if (e != TOK_OK) {
      rc = die(status_of(err.code), "%s", err.detail);
    } else if (o->lossy) {
      if (tok_utf8_append_lossy(&lossy, bytes.data, bytes.len) != TOK_OK) rc = die(1, "out of memory");
      else fwrite(lossy.data, 1, lossy.len, stdout);
    } else {
      fwrite(bytes.data, 1, bytes.len, stdout);
    }
  }
  free(ids);
  tok_buf_free(&in);
  tok_buf_free(&bytes);
  tok_buf_free(&lossy);
  unload(&l);
  if (!rc && fflush(stdout) != 0) rc = die(1, "write error: %s", strerror(errno));
  return rc;
}

/* One pass over text for bench: whole, or in slices of at most `slices` bytes cut between
 * characters. The ids of the last call are left in res; *tokens counts all of them. */
static tok_err bench_pass(const loaded *l, const tok_encode_opts *opts, const tok_buf *text, size_t slices,
                          tok_encode_result *res, size_t *tokens, tok_error *err)
{
  if (!slices) {
    tok_err rc = tok_encode(l->enc, l->scratch, text->data, text->len, opts, res, err);
    *tokens = res->len;
    return rc;
  }
  *tokens = 0;
  for (size_t at = 0; at < text->len;) {
    size_t n = text->len - at < slices ? text->len - at : slices;
    /* back to the start of a character (at most 3 bytes: slices are 4 or more) */
    while (at + n < text->len && n > 1 && ((unsigned char)text->data[at + n] & 0xC0) == 0x80) n--;
    tok_err rc = tok_encode(l->enc, l->scratch, text->data + at, n, opts, res, err);
    if (rc != TOK_OK) return rc;
    *tokens += res->len;
    at += n;
  }
  return TOK_OK;
}

static int cmd_bench(const cli_opts *o)
{
  if (o->n_files == 0) return die(2, "bench: name at least one FILE");
  loaded l = {0};
  int rc = load(o, &l);
  if (!rc) rc = load_helpers(o, &l, 1);
  if (rc) {
    unload(&l);
    return rc;
  }
  /* a server is ready once these are built (the built-in vocabularies bring them) */
  tok_registry_warm(l.reg);
  tok_encode_opts opts = {.split = &l.split};
  printf("%-32s %10s %10s %12s %12s %12s %12s\n", "file", "bytes", "tokens", "MB/s", "tokens/s", "best MB/s",
         "first MB/s");
  for (int f = 0; f < o->n_files && !rc; f++) {
    FILE *fp = fopen(o->files[f], "rb");
    if (!fp) {
      rc = die(1, "%s: %s", o->files[f], strerror(errno));
      break;
    }
    tok_buf text = {0};
    rc = read_all(fp, &text);
    fclose(fp);
    tok_error err;
    tok_encode_result res = {0};
    size_t tokens = 0;
    /* the first pass: text this process has not seen (caches cold for it), and the check
     * of the input; then repeated passes, as the fastest published benchmarks measure */
    double t0 = tokd_now();
    if (!rc && bench_pass(&l, &opts, &text, o->slices, &res, &tokens, &err) != TOK_OK)
      rc = die(status_of(err.code), "%s: %s", o->files[f], err.detail);
    double first = tokd_now() - t0;
    if (!rc) {
      size_t runs = 0;
      double start = tokd_now(), elapsed, fastest = 0;
      do {
        double t1 = tokd_now();
        bench_pass(&l, &opts, &text, o->slices, &res, &tokens, NULL);
        double t2 = tokd_now();
        if (runs == 0 || t2 - t1 < fastest) fastest = t2 - t1;
        runs++;
        elapsed = t2 - start;
      } while (elapsed < o->seconds);
      double mbs = (double)text.len * (double)runs / elapsed / 1e6;
      double tps = (double)tokens * (double)runs / elapsed;
      printf("%-32s %10zu %10zu %12.2f %12.0f %12.2f %12.2f\n", o->files[f], text.len, tokens, mbs, tps,
             (double)text.len / fastest / 1e6, (double)text.len / first / 1e6);
      fflush(stdout);
    }
    tok_buf_free(&text);
  }
  unload(&l);
  return rc;
}

static int cmd_encodings(const cli_opts *o)
{
  tok_registry *reg;
  tok_error err;
  tok_load_opts lo = {.vocab_dir = o->vocab_dir, .tokenizers = o->tokenizers,
                      .n_tokenizers = o->n_tokenizers};
  if (tok_registry_load(&lo, &reg, &err) != TOK_OK)
    return die(status_of(err.code), "%s", err.detail);
  for (size_t i = 0; i < tok_registry_count(reg); i++) {
    const tok_encoding_info *info = tok_encoding_get_info(tok_registry_at(reg, i));
    printf("%-14s n_vocab=%-7u ranks=%-7u special=%zu sha256=%s\n", info->name, info->n_vocab,
           info->n_ranks, info->n_special, info->sha256[0] ? info->sha256 : "-");
    if (info->kind == TOK_KIND_HUGGINGFACE)
      printf("  normalizer: %s\n  pre_tokenizer: %s\n  model: %s\n  post_processor: %s\n  decoder: %s\n",
             info->normalizer, info->pre_tokenizer, info->model, info->post_processor, info->decoder);
  }
  tok_registry_free(reg);
  return 0;
}

/* `tokd chat`: render the conversation on stdin with the model's chat template (or
 * --chat-template FILE), then print the text (--render-only) or its ids. The rendered text
 * is encoded with every special token allowed: the template writes them as text. */
static int cmd_chat(const cli_opts *o)
{
  loaded l = {0};
  tok_buf body = {0}, tmpl_file = {0}, text = {.limit = (size_t)256 << 20}, out = {0};
  tok_chat_template *tmpl = NULL;
  int rc = load(o, &l);
  const char *src = NULL;
  size_t src_len = 0;
  if (!rc && o->chat_template) {
    FILE *f = fopen(o->chat_template, "rb");
    if (!f) rc = die(2, "--chat-template %s: %s", o->chat_template, strerror(errno));
    else {
      rc = read_all(f, &tmpl_file);
      fclose(f);
      src = tmpl_file.data ? tmpl_file.data : "";
      src_len = tmpl_file.len;
    }
  } else if (!rc) {
    src = tok_encoding_get_info(l.enc)->chat_template;
    if (!src) rc = die(2, "%s has no chat template; give one with --chat-template FILE", o->encoding);
    else src_len = strlen(src);
  }
  tok_error err;
  if (!rc && tok_chat_template_parse(src, src_len, &tmpl, &err) != TOK_OK)
    rc = die(2, "%s", err.detail);
  if (!rc) rc = read_all(stdin, &body);
  tok_chat_request req = {.now = time(NULL)};
  bool add_special = false;
  const char *now = getenv("TOKD_CHAT_NOW"); /* fixed time for strftime_now in tests */
  if (now && *now) req.now = (time_t)strtoll(now, NULL, 10);
  if (!rc) {
    const tok_encoding_info *info = tok_encoding_get_info(l.enc);
    req.bos_token = info->bos_token;
    req.eos_token = info->eos_token;
    if (tok_chat_request_from_body(body.data ? body.data : "", body.len, &req, &add_special, &err) != TOK_OK ||
        tok_chat_render(tmpl, &req, NULL, &text, &err) != TOK_OK)
      rc = die(status_of(err.code), "%s", err.detail);
  }
  if (!rc && o->chat_bench) {
    /* parse once (as at load), then render, and render + encode, as many times as fit */
    tok_special_set all;
    tok_encode_opts opts = {.add_special_tokens = add_special};
    if (tok_special_set_parse(l.enc, "all", 3, &all, &err) == TOK_OK) opts.allowed_special = &all;
    double us[2] = {0, 0};
    for (int phase = 0; phase < 2 && !rc; phase++) {
      size_t n = 0;
      double start = tokd_now(), elapsed;
      do {
        for (int k = 0; k < 64; k++, n++) {
          text.len = 0;
          tok_encode_result res;
          if (tok_chat_render(tmpl, &req, NULL, &text, &err) != TOK_OK ||
              (phase == 1 && tok_encode(l.enc, l.scratch, text.data, text.len, &opts, &res, &err) != TOK_OK)) {
            rc = die(status_of(err.code), "%s", err.detail);
            break;
          }
        }
        elapsed = tokd_now() - start;
      } while (!rc && elapsed < o->seconds);
      us[phase] = elapsed * 1e6 / (double)n;
    }
    if (!rc) printf("{\"render_us\":%.2f,\"render_encode_us\":%.2f,\"bytes\":%zu}\n", us[0], us[1], text.len);
  } else if (!rc && o->render_only) {
    fwrite(text.data ? text.data : "", 1, text.len, stdout);
  } else if (!rc) {
    tok_special_set all;
    tok_encode_opts opts = {.add_special_tokens = add_special};
    if (tok_special_set_parse(l.enc, "all", 3, &all, &err) == TOK_OK) opts.allowed_special = &all;
    tok_encode_result res;
    if (tok_encode(l.enc, l.scratch, text.data ? text.data : "", text.len, &opts, &res, &err) != TOK_OK)
      rc = die(status_of(err.code), "%s", err.detail);
    else
      rc = print_ids(res.ids, res.len, &out);
  }
  tok_chat_template_free(tmpl);
  tok_buf_free(&body);
  tok_buf_free(&tmpl_file);
  tok_buf_free(&text);
  tok_buf_free(&out);
  unload(&l);
  if (!rc && fflush(stdout) != 0) rc = die(1, "write error: %s", strerror(errno));
  return rc;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
    print_usage(stdout);
    return 0;
  }
  if (!strcmp(cmd, "serve")) return tokd_serve_main(argc - 1, argv + 1);
  if (!strcmp(cmd, "health") || !strcmp(cmd, "--healthcheck"))
    return tokd_health_main(argc - 1, argv + 1);
  cli_opts o;
  int rc = parse_opts(argc - 1, argv + 1, &o);
  if (!rc) {
    if (!strcmp(cmd, "encode")) rc = cmd_encode_or_count(&o, false);
    else if (!strcmp(cmd, "count")) rc = cmd_encode_or_count(&o, true);
    else if (!strcmp(cmd, "decode")) rc = cmd_decode(&o);
    else if (!strcmp(cmd, "bench")) rc = cmd_bench(&o);
    else if (!strcmp(cmd, "encodings")) rc = cmd_encodings(&o);
    else if (!strcmp(cmd, "chat")) rc = cmd_chat(&o);
    else rc = die(2, "unknown command \"%s\"; see `tokd --help`", cmd);
  }
  tokd_sources_free(o.tokenizers, o.n_tokenizers);
  return rc;
}
