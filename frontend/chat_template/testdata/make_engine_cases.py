#!/usr/bin/env python3
"""Regenerates engine_cases.jsonl: each template rendered by Python jinja2 under Hugging
Face's chat environment (the reference the C++ engine must match byte for byte).

Usage: python3 make_engine_cases.py > engine_cases.jsonl   (needs python3-jinja2)
Each line: {"template", "context", "rendered"} or {"template", "context", "error"} where
error is the Python exception type name.
"""
import json
import sys

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class AssistantTracker(Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_noop"), [], [], body).set_lineno(lineno)

    def _noop(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception

CTX = {
    "messages": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Héllo 世界"},
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "f", "arguments": {"b": 1, "a": [1.5, True, None]}}}]},
    ],
    "items": [3, 1, 2],
    "words": ["b", "A", "c"],
    "d": {"z": 1, "a": "x", "m": [1, 2]},
    "s": "  Hello World  ",
    "n": 7,
    "f": 2.5,
    "users": [{"name": "ann", "age": 30, "admin": True}, {"name": "bob", "age": 25, "admin": False}, {"name": "cy", "age": 30}],
}

CASES = [
    # whitespace control
    "a  {%- if true %} b {% endif -%}  c",
    "  {% if true %}\n  x\n  {% endif %}\n  y  {# c #}\n z",
    "{%+ if true %}\n  kept\n{% endif +%}\nz",
    "line1\n    {{ 'v' }}\n    {% set q = 1 %}\nline2\n",
    "a\r\nb\r\n{% if true %}\r\nc\r\n{% endif %}\r\n",
    "{% raw %}  {{ x }}\n{% endraw %}\nq",
    "{%- raw -%}  {{ y }}  {%- endraw -%}  tail",
    "x {#- comment -#} y\n{# c2 #}\nz",
    "{{ '{{' }} {{ {'a': 1}['a'] }}}}",
    "\n\n{% for i in items %}\n  {{ i }}\n{% endfor %}\n\n",
    # literals and expressions
    "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }}",
    "{{ 1.0 }} {{ 1e20 }} {{ 1.5e-7 }} {{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 3.0 * 2 }} {{ 1_000 }} {{ 0x1F }}",
    "{{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1, 2] + [3] }} {{ (1, 2) }} {{ (1,) }} {{ () }}",
    "{{ [1, 'a', none, true, 1.5, {'k': \"it's\"}] }} {{ {'a': [1, {'b': none}]} }}",
    "{{ 'x' if false }}|{{ 'y' if n > 5 else 'z' }}|{{ none or 'dflt' }}|{{ 0 and 1 }}|{{ not items }}",
    "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' in 'cat' }} {{ 2 not in items }} {{ 'z' in d }} {{ 1 == 1.0 }} {{ [1] == [1] }}",
    "{{ s[2:7] }}|{{ items[::-1] }}|{{ items[-1] }}|{{ 'héllo'[1] }}|{{ 'héllo'[-3:] }}|{{ items[5] }}|{{ messages[1].content[:3] }}",
    "{{ d.a }} {{ d['m'][1] }} {{ d.missing }} {{ d.get('a') }} {{ d.get('q', 'def') }} {{ d.get('q') }}",
    "{{ \"multi\" 'part' \"string\" }} {{ 'esc\\n\\t\\u00e9\\x41' }} {{ 'a\\qb' }}",
    "{{ true }} {{ True }} {{ none }} {{ None }} {{ false | string }}",
    "{{ undefined_var }}|{{ undefined_var is defined }}|{{ undefined_var | default('dv') }}|{{ '' | default('e', true) }}",
    # statements
    "{% for x in items %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}",
    "{% for x in items if x > 1 %}{{ loop.index }}:{{ x }}{{ ',' if not loop.last }}{% endfor %}",
    "{% for x in [] %}a{% else %}empty{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
    "{% for k in d %}{{ k }}{% endfor %}|{% for c in 'ab' %}[{{ c }}]{% endfor %}",
    "{% for x in items %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{% for x in items %}{{ loop.previtem }}-{{ loop.nextitem }}|{{ loop.cycle('o', 'e') }} {% endfor %}",
    "{% for a in [[1, 2], [3, 4]] %}{% for b in a %}{{ loop.depth }}{{ b }}{% endfor %}{% endfor %}",
    "{% set x = 1 %}{% for i in items %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}",
    "{% set ns = namespace(total=0, names=[]) %}{% for i in items %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 1, 2 %}{{ t }}",
    "{% set block %}  inner {{ n }}  {% endset %}[{{ block }}]{% set up | upper %}abc{% endset %}{{ up }}",
    "{% macro m(a, b='B', c=none) %}{{ a }}{{ b }}{{ c }}{% endmacro %}{{ m(1) }} {{ m(1, 2, 3) }} {{ m(a=5, c='C') }}",
    "{% macro outer() %}<{{ caller() }}>{% endmacro %}{% call outer() %}inside {{ n }}{% endcall %}",
    "{% macro li(x) %}[{{ caller(x * 2) }}]{% endmacro %}{% call(v) li(4) %}got {{ v }}{% endcall %}",
    "{% macro v() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ v(1, 2, k=3) }}",
    "{% macro rec(n) %}{{ n }}{% if n > 0 %}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(5) }}",
    "{% filter upper %}shout {{ n }}{% endfilter %}",
    "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}",
    "{% generation %}gen {{ n }}{% endgeneration %}",
    "{% for x in [[1, [2, 3]], [4, []]] recursive %}{{ x[0] if x is sequence else x }}{% if x is sequence and x[1] %}({{ loop(x[1]) }}){% endif %}{% endfor %}",
    "{% if n is odd %}odd{% elif n is even %}even{% else %}?{% endif %} {% if n is divisibleby 7 %}div{% endif %}",
    "{% print n, 'p' %}",
    # filters
    "{{ d | tojson }} {{ items | tojson }} {{ 'é\"\\\\\\n' | tojson }} {{ 1.0 | tojson }} {{ none | tojson }}",
    "{{ d | tojson(indent=2) }}",
    "{{ d | tojson(separators=(',', ':'), sort_keys=true) }}",
    "{{ messages | tojson }}",
    "{{ s | trim }}|{{ s | length }}|{{ items | count }}|{{ d | length }}|{{ s | lower }}|{{ s | upper }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}",
    "{{ items | join(', ') }}|{{ words | join }}|{{ users | join('-', attribute='name') }}",
    "{{ d | items | list }}|{{ items | first }}|{{ items | last }}|{{ items | sort }}|{{ words | sort }}|{{ words | sort(case_sensitive=true) }}|{{ items | reverse | list }}",
    "{{ users | selectattr('admin') | map(attribute='name') | list }}|{{ users | rejectattr('admin') | map(attribute='name') | join(',') }}",
    "{{ users | selectattr('age', 'equalto', 30) | map(attribute='name') | list }}|{{ items | select('odd') | list }}|{{ items | reject('odd') | list }}",
    "{{ items | map('string') | join('+') }}|{{ items | sum }}|{{ items | max }}|{{ items | min }}|{{ [1, 2, 1] | unique | list }}",
    "{{ 'a b c' | replace(' ', '_') }}|{{ 'aaa' | replace('a', 'b', 2) }}|{{ '3' | int + 1 }}|{{ 'x' | int }}|{{ '2.5' | float }}|{{ 2.567 | round(2) }}|{{ -3 | abs }}",
    "{{ 'one\\ntwo\\n\\nthree' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'some words here' | wordcount }}",
    "{{ '%s-%d' | format('a', 3) }}|{{ '%5.2f|%-4s|%03d' % (3.14159, 'ab', 7) }}|{{ '{}:{name}'.format(1, name='n') }}",
    "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'x'.startswith('x') }}|{{ 'abc'.endswith(('z', 'c')) }}",
    "{{ d.keys() | list }}|{{ d.values() | list }}|{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}|{{ 'a-b'.replace('-', '+') }}|{{ '  x '.strip(' x') }}",
    "{{ users | groupby('age') | list }}",
    "{{ range(3) | list }}|{{ range(1, 10, 3) | list }}|{{ range(5, 0, -2) | list }}|{{ dict(a=1, b=2) }}",
    "{{ items is iterable }}{{ d is mapping }}{{ s is string }}{{ n is number }}{{ n is integer }}{{ f is float }}{{ none is none }}{{ true is boolean }}{{ false is false }}{{ true is true }}",
    "{{ items is sequence }}{{ d is sequence }}{{ n is sequence }}{{ undefined_var is undefined }}{{ n is eq 7 }}{{ n is ne 7 }}{{ n is lt 8 }}{{ n is gt 8 }}{{ 'ab' is lower }}",
    "{{ d | dictsort }}|{{ d | dictsort(reverse=true) }}",
    "{{ [1, 2, 3, 4, 5] | batch(2) | list }}|{{ 'a long sentence here' | truncate(9) }}",
    "{{ '<a href=\"x\">&</a>' | e }}|{{ '<b>' | safe }}",
    # errors
    "{{ 'a' + 1 }}",
    "{{ none + 'a' }}",
    "{% for x in none %}{% endfor %}",
    "{{ undefined_var.attr }}",
    "{{ undefined_var | tojson }}",
    "{{ raise_exception('custom failure') }}",
    "{{ range(200000) | length }}",
    "{{ [].append(1) }}",
    "{{ 1 / 0 }}",
    "{% if %}{% endif %}",
    "{% for %}",
    "{{ 1 + }}",
    "{% endfor %}",
    "{{ x | nosuchfilter }}",
    "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}",
    "{% set x.y = 1 %}",
    "{{ 'abc' }",
    "{# unterminated",
    "{% raw %} no end",
]


def main():
    for template in CASES:
        record = {"template": template, "context": CTX}
        try:
            record["rendered"] = env.from_string(template).render(**CTX)
        except Exception as e:  # noqa: BLE001 - the type is the expected outcome
            record["error"] = type(e).__name__
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
