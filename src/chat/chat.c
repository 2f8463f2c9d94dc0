/*
 * chat.c — apply_chat_template: a conversation (vLLM's chat request fields) rendered with a
 * parsed template the way transformers renders it, and the template-independent rules
 * around it: the context variables (messages, tools, documents, add_generation_prompt,
 * bos_token, eos_token, chat_template_kwargs), vLLM's normalization of the messages and
 * tools (messages.c: content format, tool-call arguments, reasoning), and
 * continue_final_message (the text is cut right after the last message's content, as
 * transformers cuts it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/messages.h"

/* ---- vLLM's content format --------------------------------------------------------
 * vLLM (chat_utils.py, _detect_content_format) gives content parts to the template as a
 * list ("openai") when the template has a for loop over `M.content` or `M['content']`,
 * where M is the target of a for loop over `messages` or over a variable assigned from it
 * (`{% set V = messages... %}`, followed transitively), and each of these may be wrapped in
 * filters, a test or a slice. Any other template gets the parts' text joined by "\n"
 * ("string"). Where vLLM's walk fails (such an assignment or loop binding a tuple or a
 * namespace attribute), it falls back to "string"; so does this. */
typedef struct names {
  const char **v;
  size_t n, cap;
  bool bad; /* vLLM's assertion failed: "string" */
} names;

static void names_add(names *l, const char *s)
{
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->v[i], s)) return; /* vLLM re-queues names; one visit decides the same */
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 8;
    const char **g = realloc(l->v, cap * sizeof *g);
    if (!g) {
      l->bad = true;
      return;
    }
    l->v = g;
    l->cap = cap;
  }
  l->v[l->n++] = s;
}

/* vLLM's _is_var_or_elems_access: var, or var.key / var['key'] when key is given, under
 * any filters, a (non-negated) test or slices */
static bool var_access(const jnode *n, const char *var, const char *key)
{
  while (n && ((n->kind == N_FILTER && n->a && n->a->kind != N_BLOCK) ||
               (n->kind == N_TEST && !n->op) || n->kind == N_SLICE))
    n = n->a;
  if (!n) return false;
  if (!key) return n->kind == N_NAME && !strcmp(n->name, var);
  if (!n->a || n->a->kind != N_NAME || strcmp(n->a->name, var)) return false;
  if (n->kind == N_ATTR) return !strcmp(n->name, key);
  return n->kind == N_ITEM && n->b && n->b->kind == N_LIT && n->b->lit.t == JV_STR &&
         n->b->lit.u.s.n == strlen(key) && !memcmp(n->b->lit.u.s.p, key, n->b->lit.u.s.n);
}

typedef enum { WALK_ASSIGN, WALK_MSG_LOOPS, WALK_CONTENT_LOOPS } walk_kind;

/* Visits every statement in document order (jinja2's find_all); returns true when a
 * content loop is found (WALK_CONTENT_LOOPS). */
static bool walk(const jnode *n, walk_kind kind, const char *var, names *in, names *out)
{
  if (!n || out->bad) return false;
  if (kind == WALK_ASSIGN && (n->kind == S_SET || n->kind == S_SET_ATTR) && n->a &&
      var_access(n->a, var, NULL)) {
    if (n->kind == S_SET_ATTR || n->n_names != 1) out->bad = true;
    else names_add(out, n->names[0]);
  }
  if (kind != WALK_ASSIGN && n->kind == S_FOR)
    for (size_t i = 0; i < in->n; i++)
      if (var_access(n->a, in->v[i], kind == WALK_CONTENT_LOOPS ? "content" : NULL)) {
        if (n->n_names != 1) out->bad = true;
        else if (kind == WALK_CONTENT_LOOPS) return true;
        else names_add(out, n->names[0]);
        break;
      }
  if (n->kind < S_BODY) return false; /* expressions hold no statements */
  const jnode *kids[] = {n->a, n->b, n->c, n->d};
  for (size_t i = 0; i < 4; i++)
    if (kids[i] && kids[i]->kind >= S_BODY && walk(kids[i], kind, var, in, out)) return true;
  for (size_t i = 0; i < n->n_items; i++)
    if (n->items[i] && n->items[i]->kind >= S_BODY && walk(n->items[i], kind, var, in, out)) return true;
  return out->bad && kind == WALK_CONTENT_LOOPS;
}

bool tok__chat_openai_content(const jnode *root)
{
  names msgs = {0}, items = {0}, none = {0};
  bool openai = false;
  names_add(&msgs, "messages");
  for (size_t i = 0; i < msgs.n && !msgs.bad; i++) walk(root, WALK_ASSIGN, msgs.v[i], NULL, &msgs);
  if (!msgs.bad) walk(root, WALK_MSG_LOOPS, NULL, &msgs, &items);
  if (!msgs.bad && !items.bad) openai = walk(root, WALK_CONTENT_LOOPS, NULL, &items, &none) && !none.bad;
  free(msgs.v);
  free(items.v);
  free(none.v);
  return openai;
}

/* The conversation as vLLM hands it to the template (messages.c). */
static jv read_messages(jrender *r, const tok_chat_template *t, const tok_chat_request *req)
{
  if (!req->messages_json) tok__jr_fail(r, TOK_EINVAL, "messages: required");
  jv msgs = tok__jv_from_json(r, req->messages_json, req->messages_len, "messages");
  if (msgs.t != JV_LIST) tok__jr_fail(r, TOK_EINVAL, "messages: expected a list of message objects");
  return tok__chat_normalize_messages(r, msgs, t->iterates_content);
}

/* transformers: the final message's content (its last text part) must appear in the
 * rendered text; everything after its last occurrence is cut. */
static void continue_final(jrender *r, jv msgs, tok_buf *out, size_t start)
{
  if (!msgs.u.l->n) tok__jr_fail(r, TOK_EINVAL, "continue_final_message: there is no message");
  jv last = msgs.u.l->v[msgs.u.l->n - 1];
  const jv *c = tok__jd_get_str(last.u.d, "content", 7);
  jv text = tok__jv_none();
  if (c && c->t == JV_STR) text = *c;
  else if (c && c->t == JV_LIST)
    for (size_t i = c->u.l->n; i-- > 0;) {
      jv part = c->u.l->v[i];
      const jv *tx = part.t == JV_DICT ? tok__jd_get_str(part.u.d, "text", 4) : NULL;
      if (tx && tx->t == JV_STR) {
        text = *tx;
        break;
      }
    }
  if (text.t != JV_STR)
    tok__jr_fail(r, TOK_EINVAL, "continue_final_message is set but the final message has no text to continue");
  /* transformers finds the message's text stripped, and keeps its trailing space when the
   * rendering has it too */
  jv stripped = tok__py_strip(text, tok__jv_none(), true, true);
  jv lstripped = tok__py_strip(text, tok__jv_none(), true, false);
  size_t sb = (size_t)(stripped.u.s.p - text.u.s.p), se = sb + stripped.u.s.n;
  size_t lb = (size_t)(lstripped.u.s.p - text.u.s.p), le = lb + lstripped.u.s.n;
  const char *hay = out->data + start;
  size_t hay_len = out->len - start, need = se - sb;
  const char *hit = NULL;
  if (need <= hay_len)
    for (size_t k = hay_len - need + 1; k-- > 0;)
      if (memcmp(hay + k, text.u.s.p + sb, need) == 0) {
        hit = hay + k;
        break;
      }
  if (!hit)
    tok__jr_fail(r, TOK_ERENDER, "continue_final_message is set but the final message does not appear "
                            "in the chat after applying the chat template");
  size_t loc = (size_t)(hit - hay), keep_l = le - lb;
  if (loc + keep_l <= hay_len && keep_l == text.u.s.n &&
      memcmp(hay + loc, text.u.s.p + lb, keep_l) == 0)
    out->len = start + loc + keep_l; /* the template kept the message's trailing space */
  else
    out->len = start + loc + need;
}

tok_err tok_chat_render(const tok_chat_template *t, const tok_chat_request *req,
                        const tok_chat_limits *lim_in, tok_buf *out, tok_error *err)
{
  tok_chat_limits lim = lim_in ? *lim_in : (tok_chat_limits){0};
  if (!lim.max_memory) lim.max_memory = 64u << 20;
  if (!lim.max_steps) lim.max_steps = 50000000;
  if (!lim.max_output) lim.max_output = 16u << 20;
  if (!lim.max_depth) lim.max_depth = 32;
  size_t start = out->len, saved_limit = out->limit;
  if (!out->limit || out->limit > start + lim.max_output) out->limit = start + lim.max_output;
  jrender *r = calloc(1, sizeof *r);
  if (!r) return TOK_ENOMEM;
  r->arena.limit = lim.max_memory;
  r->err = err;
  r->lim = &lim;
  r->now = req->now;
  r->out = out;
  if (lim.max_ms) r->deadline_ns = tok__chat_now_ns() + (uint64_t)lim.max_ms * 1000000u;
  volatile tok_err rc = TOK_OK;
  if (setjmp(r->exit)) {
    rc = err ? err->code : TOK_ERENDER;
    if (rc == TOK_OK) rc = TOK_ERENDER;
    tok__jr_divert_free_all(r);
    out->len = start;
    goto done;
  }
  if (req->continue_final_message && req->add_generation_prompt)
    tok__jr_fail(r, TOK_EINVAL, "continue_final_message and add_generation_prompt cannot both be true");
  jframe *g = tok__jr_alloc(r, sizeof *g);
  memset(g, 0, sizeof *g);
  if (req->kwargs_json) {
    jv kw = tok__jv_from_json(r, req->kwargs_json, req->kwargs_len, "chat_template_kwargs");
    if (kw.t != JV_DICT) tok__jr_fail(r, TOK_EINVAL, "chat_template_kwargs: expected an object");
    static const char *const reserved[] = {"messages", "tools", "documents", "add_generation_prompt"};
    /* vLLM refuses these (resolve_chat_template_kwargs, "Found unexpected chat template
     * kwargs"): the template is chosen before the kwargs are read, and no kwarg may choose
     * another one or ask for tokenizing */
    static const char *const refused[] = {"chat_template", "tokenize"};
    for (size_t i = 0; i < kw.u.d->n; i++) {
      jv k = kw.u.d->k[i];
      for (size_t j = 0; j < sizeof reserved / sizeof *reserved; j++)
        if (k.u.s.n == strlen(reserved[j]) && !memcmp(k.u.s.p, reserved[j], k.u.s.n))
          tok__jr_fail(r, TOK_EINVAL, "chat_template_kwargs: '%s' is a request field of its own", reserved[j]);
      for (size_t j = 0; j < sizeof refused / sizeof *refused; j++)
        if (k.u.s.n == strlen(refused[j]) && !memcmp(k.u.s.p, refused[j], k.u.s.n))
          tok__jr_fail(r, TOK_EINVAL, "chat_template_kwargs: '%s' is not accepted (as vLLM refuses it)", refused[j]);
      tok__jr_set(r, g, tok__jv_str_copy(r, k.u.s.p, k.u.s.n).u.s.p, kw.u.d->v[i]);
    }
  }
  jv msgs = read_messages(r, t, req);
  tok__jr_set(r, g, "messages", msgs);
  tok__jr_set(r, g, "tools", tok__chat_normalize_tools(r, req->tools_json ? tok__jv_from_json(r, req->tools_json, req->tools_len, "tools") : tok__jv_none()));
  tok__jr_set(r, g, "documents", req->documents_json ? tok__jv_from_json(r, req->documents_json, req->documents_len, "documents") : tok__jv_none());
  tok__jr_set(r, g, "add_generation_prompt", tok__jv_bool(req->add_generation_prompt));
  if (req->bos_token) {
    bool overridden = false;
    for (size_t i = 0; i < g->n; i++) overridden |= !strcmp(g->names[i], "bos_token");
    if (!overridden) tok__jr_set(r, g, "bos_token", tok__jv_str(req->bos_token, strlen(req->bos_token)));
  }
  if (req->eos_token) {
    bool overridden = false;
    for (size_t i = 0; i < g->n; i++) overridden |= !strcmp(g->names[i], "eos_token");
    if (!overridden) tok__jr_set(r, g, "eos_token", tok__jv_str(req->eos_token, strlen(req->eos_token)));
  }
  tok__jr_render_value(r, t, g);
  if (req->continue_final_message) continue_final(r, msgs, out, start);
done:
  tok__ja_free(&r->arena);
  tok__ja_free(&r->scratch);
  free(r->dirty);
  free(r);
  out->limit = saved_limit;
  return rc;
}

void tok_chat_float_repr(char *buf, size_t cap, double f)
{
  tok__jv_float_repr(buf, cap, f);
}
