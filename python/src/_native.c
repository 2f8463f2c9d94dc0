/*
 * _native.c — the CPython extension over libtokd: a Registry (loaded tokenizers) and Enc
 * handles with the few primitive calls that tokd/__init__.py builds tiktoken's and Hugging
 * Face's interfaces from. No policy here: which specials are allowed, what is an error for
 * which interface, is decided in Python; this file moves bytes and ids.
 *
 * Threads: a Registry is immutable once loaded and shared; every OS thread that encodes gets
 * its own tok_scratch (thread-local, freed when the thread ends). The GIL is released around
 * any encode or decode of more than GIL_BYTES bytes or ids; the text's UTF-8 is the str
 * object's own cached copy, kept alive by the caller's reference while the GIL is released.
 * Batches run on up to num_threads threads of their own, each with its own scratch.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <tok.h>
#include <time.h>

#include <tok_chat.h> /* libtokd's chat-template API (include/, installed beside tok.h) */

/* Below this many bytes (or ids) releasing the GIL costs more than it lets run. */
#define GIL_BYTES 512

static PyObject *TokdError; /* tokd.TokdError (a ValueError) */

/* ---------------------------------------------------------------------------------------
 * One scratch per thread
 */
static pthread_key_t SCRATCH_KEY;
static pthread_once_t SCRATCH_ONCE = PTHREAD_ONCE_INIT;

static void scratch_free(void *s) { tok_scratch_free(s); }
static void scratch_key(void) { pthread_key_create(&SCRATCH_KEY, scratch_free); }

static tok_scratch *thread_scratch(void)
{
  pthread_once(&SCRATCH_ONCE, scratch_key);
  tok_scratch *s = pthread_getspecific(SCRATCH_KEY);
  if (!s && (s = tok_scratch_new(NULL))) pthread_setspecific(SCRATCH_KEY, s);
  return s;
}

/* Raises tokd's error as a Python exception (KeyError for unknown names and ids). */
static PyObject *raise_err(const tok_error *err)
{
  PyObject *type = err->code == TOK_EUNKNOWN_TOKEN || err->code == TOK_EUNKNOWN_ENCODING ? PyExc_KeyError
                   : err->code == TOK_ENOMEM                                            ? PyExc_MemoryError
                                                                                        : TokdError;
  PyObject *args = Py_BuildValue("(ssn)", err->detail, tok_err_name(err->code),
                                 err->pos == TOK_NO_POS ? (Py_ssize_t)-1 : (Py_ssize_t)err->pos);
  if (args) {
    PyErr_SetObject(type, args);
    Py_DECREF(args);
  }
  return NULL;
}

/* ---------------------------------------------------------------------------------------
 * Registry
 */
typedef struct {
  PyObject_HEAD
  tok_registry *reg;
} Registry;

typedef struct {
  PyObject_HEAD
  Registry *owner; /* keeps the registry alive */
  const tok_encoding *enc;
} Enc;

static PyTypeObject RegistryType, EncType;

static int Registry_init(Registry *self, PyObject *args, PyObject *kw)
{
  static char *names[] = {"encodings", "tokenizers", "cache_dir", "vocab_dir", NULL};
  const char *encodings = NULL, *cache_dir = NULL, *vocab_dir = NULL;
  PyObject *tokenizers = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|zOzz", names, &encodings, &tokenizers, &cache_dir, &vocab_dir))
    return -1;
  Py_ssize_t n = tokenizers && tokenizers != Py_None ? PySequence_Size(tokenizers) : 0;
  if (n < 0) return -1;
  tok_tokenizer_source *src = n ? calloc((size_t)n, sizeof *src) : NULL;
  if (n && !src) {
    PyErr_NoMemory();
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *pair = PySequence_GetItem(tokenizers, i);
    if (!pair || !PyArg_ParseTuple(pair, "ss", &src[i].name, &src[i].path)) { /* borrowed from pair */
      Py_XDECREF(pair);
      free(src);
      return -1;
    }
    Py_DECREF(pair); /* the strings live in the caller's tuples, which outlive this call */
  }
  tok_load_opts opts = {.vocab_dir = vocab_dir, .encodings = encodings, .tokenizers = src,
                        .n_tokenizers = (size_t)n, .cache_dir = cache_dir};
  tok_error err;
  tok_err rc;
  Py_BEGIN_ALLOW_THREADS
  rc = tok_registry_load(&opts, &self->reg, &err);
  if (rc == TOK_OK) tok_registry_warm(self->reg); /* the fast encoder from the first call */
  Py_END_ALLOW_THREADS
  free(src);
  if (rc != TOK_OK) {
    self->reg = NULL;
    raise_err(&err);
    return -1;
  }
  return 0;
}

static void Registry_dealloc(Registry *self)
{
  tok_registry_free(self->reg);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Registry_names(Registry *self, PyObject *unused)
{
  (void)unused;
  size_t n = tok_registry_count(self->reg);
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; list && i < n; i++)
    PyList_SET_ITEM(list, (Py_ssize_t)i, PyUnicode_FromString(tok_encoding_get_info(tok_registry_at(self->reg, i))->name));
  return list;
}

static PyObject *Registry_get(Registry *self, PyObject *arg)
{
  Py_ssize_t len;
  const char *name = PyUnicode_AsUTF8AndSize(arg, &len);
  if (!name) return NULL;
  const tok_encoding *enc = tok_registry_find(self->reg, name, (size_t)len);
  if (!enc) {
    PyErr_Format(PyExc_KeyError, "%U is not loaded", arg);
    return NULL;
  }
  Enc *e = PyObject_New(Enc, &EncType);
  if (!e) return NULL;
  Py_INCREF(self);
  e->owner = self;
  e->enc = enc;
  return (PyObject *)e;
}

static PyMethodDef Registry_methods[] = {
    {"names", (PyCFunction)Registry_names, METH_NOARGS, "names of the loaded tokenizers"},
    {"get", (PyCFunction)Registry_get, METH_O, "the tokenizer of a name or alias (KeyError if not loaded)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RegistryType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tokd._native.Registry",
    .tp_basicsize = sizeof(Registry),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Registry_init,
    .tp_dealloc = (destructor)Registry_dealloc,
    .tp_methods = Registry_methods,
};

/* ---------------------------------------------------------------------------------------
 * Enc
 */
static void Enc_dealloc(Enc *self)
{
  Py_XDECREF(self->owner);
  PyObject_Free(self);
}

static PyObject *str_or_none(const char *s) { return s ? PyUnicode_FromString(s) : Py_NewRef(Py_None); }

static PyObject *Enc_info(Enc *self, PyObject *unused)
{
  (void)unused;
  const tok_encoding_info *in = tok_encoding_get_info(self->enc);
  PyObject *specials = PyList_New((Py_ssize_t)in->n_special);
  for (size_t i = 0; specials && i < in->n_special; i++)
    PyList_SET_ITEM(specials, (Py_ssize_t)i,
                    Py_BuildValue("(s#I)", in->special[i].text, (Py_ssize_t)in->special[i].text_len, in->special[i].id));
  if (!specials) return NULL;
  return Py_BuildValue("{s:s,s:I,s:I,s:N,s:N,s:N,s:N,s:N,s:N,s:O}", "name", in->name, "n_vocab", in->n_vocab,
                       "n_ranks", in->n_ranks, "specials", specials, "pattern", str_or_none(in->pattern),
                       "bos_token", str_or_none(in->bos_token), "eos_token", str_or_none(in->eos_token),
                       "chat_template", str_or_none(in->chat_template), "kind",
                       PyUnicode_FromString(in->kind == TOK_KIND_TIKTOKEN ? "tiktoken" : "huggingface"),
                       "embedded", in->embedded ? Py_True : Py_False);
}

/* The allowed specials: None (the tokenizer's default), True (all) or a sequence of
 * texts. false with an exception set when one is not a special token. */
static bool parse_allowed(const tok_encoding *enc, PyObject *allowed, tok_special_set *set, bool *given)
{
  *given = allowed && allowed != Py_None;
  if (!*given) return true;
  if (allowed == Py_True) {
    tok_special_set_all(enc, set);
    return true;
  }
  tok_special_set_none(enc, set);
  PyObject *it = PyObject_GetIter(allowed);
  if (!it) return false;
  PyObject *item;
  tok_error err;
  while ((item = PyIter_Next(it))) {
    Py_ssize_t len;
    const char *text = PyUnicode_AsUTF8AndSize(item, &len);
    bool ok = text && tok_special_set_add(enc, set, text, (size_t)len, &err) == TOK_OK;
    if (text && !ok) raise_err(&err);
    Py_DECREF(item);
    if (!ok) {
      Py_DECREF(it);
      return false;
    }
  }
  Py_DECREF(it);
  return !PyErr_Occurred();
}

static PyObject *ids_list(const uint32_t *ids, size_t n)
{
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; list && i < n; i++) PyList_SET_ITEM(list, (Py_ssize_t)i, PyLong_FromUnsignedLong(ids[i]));
  return list;
}

/* Character offsets (code points, as Python indexes a str) of byte offsets into UTF-8 text
 * of len bytes; offsets are non-decreasing in their starts but ends may come before the
 * next start, so each is converted through a table built in one pass over the text. */
static PyObject *char_offsets(const char *text, size_t len, const uint32_t *off, size_t n)
{
  uint32_t *chars = malloc((len + 1) * sizeof *chars);
  if (!chars) return PyErr_NoMemory();
  uint32_t c = 0;
  for (size_t i = 0; i <= len; i++) {
    chars[i] = c;
    if (i < len && ((unsigned char)text[i] & 0xC0) != 0x80) c++;
  }
  /* a byte offset inside a character maps to that character's start, its end to the next */
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; list && i < n; i++) {
    uint32_t s = off[2 * i], e = off[2 * i + 1];
    uint32_t cs = chars[s < len ? s : len] - (s < len && ((unsigned char)text[s] & 0xC0) == 0x80 ? 1 : 0);
    uint32_t ce = chars[e < len ? e : len];
    if (e < len && ((unsigned char)text[e] & 0xC0) == 0x80) ce = chars[e]; /* mid-character: the one it is in ends later */
    PyList_SET_ITEM(list, (Py_ssize_t)i, Py_BuildValue("(II)", cs, ce));
  }
  free(chars);
  return list;
}

/* encode(text, allowed=None, add_special=False, offsets=None): offsets "bytes" or "chars"
 * returns (ids, offsets). */
static PyObject *Enc_encode(Enc *self, PyObject *args, PyObject *kw)
{
  static char *names[] = {"text", "allowed", "add_special", "offsets", "count_only", NULL};
  PyObject *text_obj, *allowed = NULL;
  int add_special = 0, count_only = 0;
  const char *offsets = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "U|Opzp", names, &text_obj, &allowed, &add_special, &offsets, &count_only))
    return NULL;
  Py_ssize_t len;
  const char *text = PyUnicode_AsUTF8AndSize(text_obj, &len);
  if (!text) return NULL;
  tok_special_set set;
  bool given;
  if (!parse_allowed(self->enc, allowed, &set, &given)) return NULL;
  tok_encode_opts opts = {.allowed_special = given ? &set : NULL, .add_special_tokens = add_special,
                          .want_offsets = offsets != NULL};
  tok_scratch *s = thread_scratch();
  if (!s) return PyErr_NoMemory();
  tok_encode_result res;
  size_t count = 0;
  tok_error err;
  tok_err rc;
  if (len > GIL_BYTES) {
    Py_BEGIN_ALLOW_THREADS
    rc = count_only ? tok_count(self->enc, s, text, (size_t)len, &opts, &count, NULL, &err)
                    : tok_encode(self->enc, s, text, (size_t)len, &opts, &res, &err);
    Py_END_ALLOW_THREADS
  } else {
    rc = count_only ? tok_count(self->enc, s, text, (size_t)len, &opts, &count, NULL, &err)
                    : tok_encode(self->enc, s, text, (size_t)len, &opts, &res, &err);
  }
  if (rc != TOK_OK) return raise_err(&err);
  if (count_only) return PyLong_FromSize_t(count);
  PyObject *ids = ids_list(res.ids, res.len);
  if (!offsets || !ids) return ids;
  PyObject *offs;
  if (!strcmp(offsets, "chars")) {
    offs = char_offsets(text, (size_t)len, res.offsets, res.len);
  } else {
    offs = PyList_New((Py_ssize_t)res.len);
    for (size_t i = 0; offs && i < res.len; i++)
      PyList_SET_ITEM(offs, (Py_ssize_t)i, Py_BuildValue("(II)", res.offsets[2 * i], res.offsets[2 * i + 1]));
  }
  if (!offs) {
    Py_DECREF(ids);
    return NULL;
  }
  return Py_BuildValue("(NN)", ids, offs);
}

/* encode_plain(text): encode(text) with the tokenizer's defaults and no argument parsing
 * (METH_O): a short prompt's call is mostly this overhead. */
static PyObject *Enc_encode_plain(Enc *self, PyObject *text_obj)
{
  Py_ssize_t len;
  const char *text = PyUnicode_Check(text_obj) ? PyUnicode_AsUTF8AndSize(text_obj, &len) : NULL;
  if (!text) {
    if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "text must be str, not %s", Py_TYPE(text_obj)->tp_name);
    return NULL;
  }
  tok_scratch *s = thread_scratch();
  if (!s) return PyErr_NoMemory();
  tok_encode_result res;
  tok_error err;
  tok_err rc;
  if (len > GIL_BYTES) {
    Py_BEGIN_ALLOW_THREADS
    rc = tok_encode(self->enc, s, text, (size_t)len, NULL, &res, &err);
    Py_END_ALLOW_THREADS
  } else {
    rc = tok_encode(self->enc, s, text, (size_t)len, NULL, &res, &err);
  }
  return rc == TOK_OK ? ids_list(res.ids, res.len) : raise_err(&err);
}

typedef struct batch_job {
  const tok_encoding *enc;
  const tok_encode_opts *opts;
  const char **texts;
  size_t *lens;
  size_t n, stride; /* part k encodes texts k, k + stride, ... */
  uint32_t **ids;
  uint32_t **offsets; /* when the opts ask for them */
  size_t *n_ids;
} batch_job;

typedef struct batch_part {
  batch_job *job;
  size_t first;
  tok_err rc;
  tok_error err;
} batch_part;

static void *batch_run(void *arg)
{
  batch_part *p = arg;
  batch_job *j = p->job;
  tok_scratch *s = thread_scratch();
  p->rc = s ? TOK_OK : TOK_ENOMEM;
  for (size_t i = p->first; i < j->n && p->rc == TOK_OK; i += j->stride) {
    tok_encode_result res;
    if ((p->rc = tok_encode(j->enc, s, j->texts[i], j->lens[i], j->opts, &res, &p->err)) != TOK_OK) break;
    if (!(j->ids[i] = malloc(res.len * sizeof **j->ids + 1))) p->rc = TOK_ENOMEM;
    else memcpy(j->ids[i], res.ids, res.len * sizeof **j->ids), j->n_ids[i] = res.len;
    if (p->rc == TOK_OK && j->opts->want_offsets) {
      if (!(j->offsets[i] = malloc(2 * res.len * sizeof **j->offsets + 1))) p->rc = TOK_ENOMEM;
      else memcpy(j->offsets[i], res.offsets, 2 * res.len * sizeof **j->offsets);
    }
  }
  if (p->rc == TOK_ENOMEM) p->err = (tok_error){.code = TOK_ENOMEM, .pos = TOK_NO_POS, .detail = "out of memory"};
  return NULL;
}

/* encode_batch(texts, allowed=None, add_special=False, num_threads=8, offsets=False): a
 * list of id lists, or with offsets a list of (ids, character offsets) */
static PyObject *Enc_encode_batch(Enc *self, PyObject *args, PyObject *kw)
{
  static char *names[] = {"texts", "allowed", "add_special", "num_threads", "offsets", NULL};
  PyObject *seq, *allowed = NULL;
  int add_special = 0, num_threads = 8, offsets = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|Opip", names, &seq, &allowed, &add_special, &num_threads, &offsets))
    return NULL;
  PyObject *fast = PySequence_Fast(seq, "texts must be a sequence of str");
  if (!fast) return NULL;
  size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
  tok_special_set set;
  bool given;
  PyObject *result = NULL;
  batch_job j = {.enc = self->enc, .n = n};
  j.texts = calloc(n + 1, sizeof *j.texts), j.lens = calloc(n + 1, sizeof *j.lens);
  j.ids = calloc(n + 1, sizeof *j.ids), j.n_ids = calloc(n + 1, sizeof *j.n_ids);
  j.offsets = calloc(n + 1, sizeof *j.offsets);
  if (!j.texts || !j.lens || !j.ids || !j.n_ids || !j.offsets) {
    PyErr_NoMemory();
    goto done;
  }
  if (!parse_allowed(self->enc, allowed, &set, &given)) goto done;
  tok_encode_opts opts = {.allowed_special = given ? &set : NULL, .add_special_tokens = add_special,
                          .want_offsets = offsets};
  j.opts = &opts;
  for (size_t i = 0; i < n; i++) {
    PyObject *t = PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i);
    Py_ssize_t len;
    if (!PyUnicode_Check(t)) {
      PyErr_Format(PyExc_TypeError, "texts[%zu] is %s, not str", i, Py_TYPE(t)->tp_name);
      goto done;
    }
    if (!(j.texts[i] = PyUnicode_AsUTF8AndSize(t, &len))) goto done;
    j.lens[i] = (size_t)len;
  }
  size_t threads = num_threads < 1 ? 1 : (size_t)num_threads;
  if (threads > 64) threads = 64;
  if (threads > n) threads = n ? n : 1;
  j.stride = threads;
  batch_part parts[64];
  pthread_t tids[64];
  size_t started = 0;
  Py_BEGIN_ALLOW_THREADS
  for (size_t t = 0; t < threads; t++) parts[t] = (batch_part){.job = &j, .first = t};
  /* part 0 on this thread; the others on threads of their own (fewer if one cannot start:
   * then this thread takes its share after) */
  for (size_t t = 1; t < threads; t++)
    if (pthread_create(&tids[t], NULL, batch_run, &parts[t]) == 0) started = t;
    else break;
  batch_run(&parts[0]);
  for (size_t t = 1; t <= started; t++) pthread_join(tids[t], NULL);
  for (size_t t = started + 1; t < threads; t++) batch_run(&parts[t]);
  Py_END_ALLOW_THREADS
  for (size_t t = 0; t < threads; t++)
    if (parts[t].rc != TOK_OK) {
      raise_err(&parts[t].err);
      goto done;
    }
  result = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; result && i < n; i++) {
    PyObject *ids = ids_list(j.ids[i], j.n_ids[i]);
    if (ids && offsets) {
      PyObject *offs = char_offsets(j.texts[i], j.lens[i], j.offsets[i], j.n_ids[i]);
      PyObject *pair = offs ? Py_BuildValue("(NN)", ids, offs) : NULL;
      if (!offs) Py_DECREF(ids);
      ids = pair;
    }
    if (!ids) Py_CLEAR(result);
    else PyList_SET_ITEM(result, (Py_ssize_t)i, ids);
  }
done:
  for (size_t i = 0; j.ids && i < n; i++) free(j.ids[i]);
  for (size_t i = 0; j.offsets && i < n; i++) free(j.offsets[i]);
  free(j.texts), free(j.lens), free(j.ids), free(j.n_ids), free(j.offsets);
  Py_DECREF(fast);
  return result;
}

/* The ids of a sequence of ints, malloc'd; NULL with an exception set. */
static uint32_t *parse_ids(PyObject *seq, size_t *n)
{
  PyObject *fast = PySequence_Fast(seq, "tokens must be a sequence of int");
  if (!fast) return NULL;
  *n = (size_t)PySequence_Fast_GET_SIZE(fast);
  uint32_t *ids = malloc(*n * sizeof *ids + 1);
  if (!ids) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return NULL;
  }
  for (size_t i = 0; i < *n; i++) {
    PyObject *o = PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i);
    unsigned long long v = PyLong_Check(o) ? PyLong_AsUnsignedLongLong(o) : (unsigned long long)-1;
    if (!PyLong_Check(o) || PyErr_Occurred() || v > UINT32_MAX) {
      PyErr_Clear();
      PyErr_Format(PyExc_KeyError, "tokens[%zu] is not a token id (an int from 0 to 2^32-1)", i);
      free(ids);
      Py_DECREF(fast);
      return NULL;
    }
    ids[i] = (uint32_t)v;
  }
  Py_DECREF(fast);
  return ids;
}

/* decode(tokens, text=False, skip_special=False): bytes (exact) or str (the decoder's). */
static PyObject *Enc_decode(Enc *self, PyObject *args, PyObject *kw)
{
  static char *names[] = {"tokens", "text", "skip_special", NULL};
  PyObject *seq;
  int as_text = 0, skip = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|pp", names, &seq, &as_text, &skip)) return NULL;
  size_t n;
  uint32_t *ids = parse_ids(seq, &n);
  if (!ids) return NULL;
  tok_scratch *s = thread_scratch();
  tok_buf out = {.limit = (size_t)1 << 34};
  tok_decode_opts opts = {.skip_special_tokens = skip};
  tok_error err;
  tok_err rc = TOK_ENOMEM;
  if (s) {
    Py_BEGIN_ALLOW_THREADS
    rc = as_text ? tok_decode_text(self->enc, s, ids, n, &opts, &out, &err)
                 : tok_decode_bytes(self->enc, s, ids, n, &opts, &out, &err);
    Py_END_ALLOW_THREADS
  } else {
    err = (tok_error){.code = TOK_ENOMEM, .pos = TOK_NO_POS, .detail = "out of memory"};
  }
  free(ids);
  PyObject *r = rc != TOK_OK ? raise_err(&err)
                : as_text    ? PyUnicode_DecodeUTF8(out.data ? out.data : "", (Py_ssize_t)out.len, "strict")
                             : PyBytes_FromStringAndSize(out.data ? out.data : "", (Py_ssize_t)out.len);
  tok_buf_free(&out);
  return r;
}

static PyObject *Enc_token_bytes(Enc *self, PyObject *arg)
{
  unsigned long long v = PyLong_AsUnsignedLongLong(arg);
  if (PyErr_Occurred() || v > UINT32_MAX) {
    PyErr_Clear();
    return PyErr_Format(PyExc_KeyError, "%R is not a token id", arg);
  }
  size_t len;
  const char *b = tok_token_bytes(self->enc, (uint32_t)v, &len);
  if (!b) return PyErr_Format(PyExc_KeyError, "token id %llu is not in the vocabulary", v);
  return PyBytes_FromStringAndSize(b, (Py_ssize_t)len);
}

static PyObject *Enc_token_string(Enc *self, PyObject *arg)
{
  unsigned long long v = PyLong_AsUnsignedLongLong(arg);
  if (PyErr_Occurred() || v > UINT32_MAX) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }
  tok_buf out = {.limit = 1 << 20};
  PyObject *r = tok_token_string(self->enc, (uint32_t)v, &out) == TOK_OK
                    ? PyUnicode_DecodeUTF8(out.data ? out.data : "", (Py_ssize_t)out.len, "replace")
                    : Py_NewRef(Py_None);
  tok_buf_free(&out);
  return r;
}

/* The id of a token text (an added token or a vocabulary string), or None. */
static PyObject *Enc_token_id(Enc *self, PyObject *arg)
{
  Py_ssize_t len;
  const char *t = PyUnicode_AsUTF8AndSize(arg, &len);
  if (!t) return NULL;
  uint32_t id;
  if (!tok_token_id(self->enc, t, (size_t)len, &id)) Py_RETURN_NONE;
  return PyLong_FromUnsignedLong(id);
}

/* The rank of a byte string in the BPE vocabulary, or None. */
static PyObject *Enc_rank_of(Enc *self, PyObject *arg)
{
  char *b;
  Py_ssize_t len;
  if (PyBytes_AsStringAndSize(arg, &b, &len) != 0) return NULL;
  uint32_t rank;
  if (!tok_rank_of(self->enc, b, (size_t)len, &rank)) Py_RETURN_NONE;
  return PyLong_FromUnsignedLong(rank);
}

/* render_chat(body_json, template=None): the conversation (a JSON object as vLLM's chat
 * /tokenize takes it: messages, tools, documents, chat_template_kwargs,
 * add_generation_prompt, continue_final_message) rendered with the tokenizer's chat
 * template, or with the given Jinja source. */
static PyObject *Enc_render_chat(Enc *self, PyObject *args, PyObject *kw)
{
  static char *names[] = {"body", "template", NULL};
  const char *body, *src = NULL;
  Py_ssize_t body_len, src_len = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s#|z#", names, &body, &body_len, &src, &src_len)) return NULL;
  const tok_encoding_info *in = tok_encoding_get_info(self->enc);
  if (!src) {
    if (!in->chat_template)
      return PyErr_Format(TokdError, "%s has no chat template (a model directory with tokenizer_config.json "
                          "or chat_template.jinja has one; or pass chat_template=)", in->name);
    src = in->chat_template;
    src_len = (Py_ssize_t)strlen(src);
  }
  tok_chat_template *t = NULL;
  tok_chat_request req = {0}; /* fields the body does not name stay absent */
  bool add_special;
  tok_buf out = {.limit = (size_t)16 << 20};
  tok_error err;
  tok_err rc;
  Py_BEGIN_ALLOW_THREADS
  rc = tok_chat_template_parse(src, (size_t)src_len, &t, &err);
  if (rc == TOK_OK) rc = tok_chat_request_from_body(body, (size_t)body_len, &req, &add_special, &err);
  if (rc == TOK_OK) {
    req.bos_token = in->bos_token, req.eos_token = in->eos_token, req.now = time(NULL);
    rc = tok_chat_render(t, &req, NULL, &out, &err);
  }
  Py_END_ALLOW_THREADS
  tok_chat_template_free(t);
  PyObject *r = rc == TOK_OK ? PyUnicode_DecodeUTF8(out.data ? out.data : "", (Py_ssize_t)out.len, "strict")
                             : raise_err(&err);
  tok_buf_free(&out);
  return r;
}

static PyMethodDef Enc_methods[] = {
    {"render_chat", (PyCFunction)(void (*)(void))Enc_render_chat, METH_VARARGS | METH_KEYWORDS,
     "a conversation rendered with the chat template"},
    {"info", (PyCFunction)Enc_info, METH_NOARGS, "name, sizes, special tokens, pattern, BOS/EOS, chat template"},
    {"encode", (PyCFunction)(void (*)(void))Enc_encode, METH_VARARGS | METH_KEYWORDS, "ids (and offsets) of a str"},
    {"encode_plain", (PyCFunction)Enc_encode_plain, METH_O, "encode(text) with the defaults, fast"},
    {"encode_batch", (PyCFunction)(void (*)(void))Enc_encode_batch, METH_VARARGS | METH_KEYWORDS,
     "ids of each str, on up to num_threads threads"},
    {"decode", (PyCFunction)(void (*)(void))Enc_decode, METH_VARARGS | METH_KEYWORDS, "bytes (or text) of ids"},
    {"token_bytes", (PyCFunction)Enc_token_bytes, METH_O, "the bytes of one token (KeyError if unknown)"},
    {"token_string", (PyCFunction)Enc_token_string, METH_O, "the vocabulary string of an id, or None"},
    {"token_id", (PyCFunction)Enc_token_id, METH_O, "the id of a token text, or None"},
    {"rank_of", (PyCFunction)Enc_rank_of, METH_O, "the rank of a byte string, or None"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "tokd._native.Enc",
    .tp_basicsize = sizeof(Enc),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Enc_dealloc,
    .tp_methods = Enc_methods,
};

static PyObject *model_encoding(PyObject *mod, PyObject *arg)
{
  (void)mod;
  Py_ssize_t len;
  const char *m = PyUnicode_AsUTF8AndSize(arg, &len);
  if (!m) return NULL;
  const char *e = tok_model_encoding(m, (size_t)len);
  return str_or_none(e);
}

static PyMethodDef module_methods[] = {
    {"model_encoding", model_encoding, METH_O, "tiktoken's encoding of an OpenAI model name, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "tokd._native", .m_doc = "libtokd for Python",
                                    .m_size = -1, .m_methods = module_methods};

PyMODINIT_FUNC PyInit__native(void)
{
  if (PyType_Ready(&RegistryType) < 0 || PyType_Ready(&EncType) < 0) return NULL;
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  TokdError = PyErr_NewException("tokd.TokdError", PyExc_ValueError, NULL);
  if (!TokdError || PyModule_AddObjectRef(m, "TokdError", TokdError) < 0 ||
      PyModule_AddObjectRef(m, "Registry", (PyObject *)&RegistryType) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
