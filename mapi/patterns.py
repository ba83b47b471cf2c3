"""Snort-style byte patterns: STR_SEARCH's pattern syntax, parsed once here for the function and
for the hardware units that run it (a card's payload checker).

In each string, |hex| blocks give bytes by value ("ab|63 64|" == "abcd"), a backslash takes the
next character literally ("\\|" is a pipe), and "||" outside a hex block separates
alternatives, as in MAPI ("abcd|||65 66|||ij" is abcd, ef or ij).  Characters up to U+00FF stand
for one byte each (latin-1); others for their UTF-8 bytes.  Errors are MapiError(EBADARG)
naming the pattern (its index) and the character.
"""
import string

from .errors import MapiError, EBADARG

HEX = set(string.hexdigits)


def _bad(where, msg):
    raise MapiError(EBADARG, "STR_SEARCH: %s in pattern %s" % (msg, where), argument="pattern")


def parse_pattern(text, where="0"):
    """One pattern string -> list of byte strings (its "||" alternatives)."""
    alts, cur = [], bytearray()
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 == n:
                _bad(where, "a trailing backslash at character %d escapes nothing" % i)
            cur += _char_bytes(text[i + 1])
            i += 2
        elif ch == "|" and text[i + 1:i + 2] == "|":
            alts.append(bytes(cur))
            cur = bytearray()
            i += 2
        elif ch == "|":
            end = text.find("|", i + 1)
            if end < 0:
                _bad(where, "the hex block opened at character %d is not closed with |" % i)
            cur += _hex_block(text[i + 1:end], where, i + 1)
            i = end + 1
        else:
            cur += _char_bytes(ch)
            i += 1
    alts.append(bytes(cur))
    for k, a in enumerate(alts):
        if not a:
            _bad(where, "alternative %d is empty (%r)" % (k, text))
    return alts


def _char_bytes(ch):
    return bytes([ord(ch)]) if ord(ch) < 256 else ch.encode("utf-8")


def _hex_block(body, where, start):
    out = bytearray()
    for tok_start, tok in _tokens(body):
        if len(tok) % 2:
            _bad(where, "odd number of hex digits %r at character %d" % (tok, start + tok_start))
        bad = [c for c in tok if c not in HEX]
        if bad:
            _bad(where, "%r is not a hex digit (character %d)" % (bad[0], start + tok_start + tok.index(bad[0])))
        out += bytes.fromhex(tok)
    return bytes(out)


def _tokens(body):
    pos = 0
    for tok in body.split(" "):
        if tok:
            yield pos, tok
        pos += len(tok) + 1


def parse_patterns(patterns):
    """A list of pattern strings -> the byte strings of all their alternatives, in order."""
    out = []
    for k, p in enumerate(patterns):
        out.extend(parse_pattern(p, str(k)))
    return out
