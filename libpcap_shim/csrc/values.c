/* Values of the protocol (docs/protocol.md §3) as the drop-in uses them: looking up info
 * dictionaries, making arguments, and writing results as JSON for MAPI_PCAP_REPORT (the same
 * JSON Python's json.dumps writes for the in-process drop-in's reports). */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "client.h"

const Value *shim_value_get(const Value *map, const char *key)
{
    if (!map || map->kind_case != SCAMPI__MAPI__V1__VALUE__KIND_MAP || !map->map) return NULL;
    for (size_t i = 0; i < map->map->n_entries; i++) {
        const MapEntry *e = map->map->entries[i];
        if (e->key && e->key->kind_case == SCAMPI__MAPI__V1__VALUE__KIND_TEXT &&
            strcmp(e->key->text, key) == 0)
            return e->value;
    }
    return NULL;
}

int64_t shim_value_int(const Value *v, int64_t dflt)
{
    if (!v) return dflt;
    switch (v->kind_case) {
    case SCAMPI__MAPI__V1__VALUE__KIND_INTEGER: return v->integer;
    case SCAMPI__MAPI__V1__VALUE__KIND_BOOLEAN: return v->boolean;
    case SCAMPI__MAPI__V1__VALUE__KIND_REAL: return (int64_t)v->real;
    case SCAMPI__MAPI__V1__VALUE__KIND_BIG_INTEGER: return strtoll(v->big_integer, NULL, 10);
    default: return dflt;
    }
}

const char *shim_value_text(const Value *v)
{
    return v && v->kind_case == SCAMPI__MAPI__V1__VALUE__KIND_TEXT ? v->text : NULL;
}

void shim_value_int_init(Value *v, int64_t i)
{
    scampi__mapi__v1__value__init(v);
    v->kind_case = SCAMPI__MAPI__V1__VALUE__KIND_INTEGER;
    v->integer = i;
}

void shim_value_text_init(Value *v, char *s)
{
    scampi__mapi__v1__value__init(v);
    v->kind_case = SCAMPI__MAPI__V1__VALUE__KIND_TEXT;
    v->text = s;
}

void shim_value_bool_init(Value *v, int b)
{
    scampi__mapi__v1__value__init(v);
    v->kind_case = SCAMPI__MAPI__V1__VALUE__KIND_BOOLEAN;
    v->boolean = b != 0;
}

/* ---- JSON ------------------------------------------------------------------------------- */

void shim_buf_printf(shim_buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->n;
        va_start(ap, fmt);
        int n = b->p ? vsnprintf(b->p + b->n, room, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && (size_t)n < room) {
            b->n += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (n >= 0 && cap - b->n <= (size_t)n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return;                 /* the report loses this piece; nothing else does */
        b->p = p;
        b->cap = cap;
    }
}

void shim_buf_json_string(shim_buf *b, const char *s)
{
    if (!s) {
        shim_buf_printf(b, "null");
        return;
    }
    shim_buf_printf(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') shim_buf_printf(b, "\\%c", *c);
        else if (*c == '\n') shim_buf_printf(b, "\\n");
        else if (*c < 0x20 || *c == 0x7f) shim_buf_printf(b, "\\u%04x", *c);
        else shim_buf_printf(b, "%c", *c);
    }
    shim_buf_printf(b, "\"");
}

static void json_list(shim_buf *b, Value *const *items, size_t n)
{
    shim_buf_printf(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i) shim_buf_printf(b, ", ");
        shim_buf_json_value(b, items[i]);
    }
    shim_buf_printf(b, "]");
}

/* JSON object keys are strings: a number key is written as its digits (json.dumps does so). */
static void json_key(shim_buf *b, const Value *k)
{
    if (k && k->kind_case == SCAMPI__MAPI__V1__VALUE__KIND_TEXT) shim_buf_json_string(b, k->text);
    else if (k && k->kind_case == SCAMPI__MAPI__V1__VALUE__KIND_INTEGER)
        shim_buf_printf(b, "\"%lld\"", (long long)k->integer);
    else shim_buf_printf(b, "\"?\"");
}

void shim_buf_json_value(shim_buf *b, const Value *v)
{
    if (!v) {
        shim_buf_printf(b, "null");
        return;
    }
    switch (v->kind_case) {
    case SCAMPI__MAPI__V1__VALUE__KIND_BOOLEAN:
        shim_buf_printf(b, v->boolean ? "true" : "false");
        break;
    case SCAMPI__MAPI__V1__VALUE__KIND_INTEGER:
        shim_buf_printf(b, "%lld", (long long)v->integer);
        break;
    case SCAMPI__MAPI__V1__VALUE__KIND_BIG_INTEGER:
        shim_buf_printf(b, "%s", v->big_integer);
        break;
    case SCAMPI__MAPI__V1__VALUE__KIND_REAL:
        if (isfinite(v->real)) shim_buf_printf(b, "%.17g", v->real);
        else shim_buf_printf(b, "null");
        break;
    case SCAMPI__MAPI__V1__VALUE__KIND_TEXT:
        shim_buf_json_string(b, v->text);
        break;
    case SCAMPI__MAPI__V1__VALUE__KIND_DATA:
        shim_buf_printf(b, "\"");
        for (size_t i = 0; i < v->data.len; i++) shim_buf_printf(b, "%02x", v->data.data[i]);
        shim_buf_printf(b, "\"");
        break;
    case SCAMPI__MAPI__V1__VALUE__KIND_LIST:
    case SCAMPI__MAPI__V1__VALUE__KIND_TUPLE: {
        const Scampi__Mapi__V1__ValueList *l =
            v->kind_case == SCAMPI__MAPI__V1__VALUE__KIND_LIST ? v->list : v->tuple;
        json_list(b, l ? l->items : NULL, l ? l->n_items : 0);
        break;
    }
    case SCAMPI__MAPI__V1__VALUE__KIND_MAP:
        shim_buf_printf(b, "{");
        for (size_t i = 0; v->map && i < v->map->n_entries; i++) {
            if (i) shim_buf_printf(b, ", ");
            json_key(b, v->map->entries[i]->key);
            shim_buf_printf(b, ": ");
            shim_buf_json_value(b, v->map->entries[i]->value);
        }
        shim_buf_printf(b, "}");
        break;
    case SCAMPI__MAPI__V1__VALUE__KIND_RECORD:    /* a named tuple: json.dumps writes a list */
        if (v->record && v->record->n_args) json_list(b, v->record->args, v->record->n_args);
        else shim_buf_json_value(b, v->record ? v->record->base_value : NULL);
        break;
    default:
        shim_buf_printf(b, "null");
    }
}
