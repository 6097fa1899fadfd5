"""Bad configurations and exactly where sor reports their problems: the cases of `sor validate`
(tests/commands/test_validate.py) and the corpus of schema verdicts (test_schema_lite.py).
"""

from __future__ import annotations

H = "version: 1\nruntime: {handler: app.handler}\n"  # a valid head: 2 lines

# (id, file text, expected problems as (line, col, config path, part of the message)).
BAD: list[tuple[str, str, list[tuple[int, int, str, str]]]] = [
    (
        "unknown-top-key",
        "version: 1\nruntim: {}\n",
        [(2, 1, "runtim", "unknown key 'runtim': did you mean 'runtime'?")],
    ),
    (
        "unknown-runtime-key",
        "version: 1\nruntime:\n  handlr: app.handler\n",
        [(3, 3, "runtime.handlr", "did you mean 'handler'?")],
    ),
    (
        "unknown-middleware-key",
        H + "middlewares:\n  - name: auth\n    timout: 1s\n",
        [(5, 5, "middlewares[0].timout", "did you mean 'timeout'?")],
    ),
    (
        "unknown-timeouts-key",
        H + "timeouts:\n  gracee: 1s\n",
        [(4, 3, "timeouts.gracee", "did you mean 'grace'?")],
    ),
    (
        "unknown-cloudevents-key",
        H + "cloudevents:\n  mapping: []\n",
        [(4, 3, "cloudevents.mapping", "did you mean 'mappings'?")],
    ),
    (
        "unknown-debug-key",
        H + "debug:\n  enable: true\n",
        [(4, 3, "debug.enable", "did you mean 'enabled'?")],
    ),
    (
        "unknown-mapping-key",
        H + "cloudevents:\n  mappings:\n    - match: {}\n      MAPATTRS\n      extra: 1\n",
        [(7, 7, "cloudevents.mappings[0].extra", "unknown key 'extra'")],
    ),
    (
        "unknown-hook-in-timeout-map",
        H + "middlewares:\n  - name: a\n    timeout: {before: 1s, during: 2s}\n",
        [(5, 27, "middlewares[0].timeout.during", "unknown key 'during'")],
    ),
    (
        "runtime-not-mapping",
        "version: 1\nruntime: python\n",
        [(2, 10, "runtime", "must be a mapping, not 'python'")],
    ),
    (
        "middlewares-not-list",
        H + "middlewares: {name: a}\n",
        [(3, 14, "middlewares", "must be a list, not a mapping")],
    ),
    (
        "middleware-not-mapping",
        H + "middlewares: [auth]\n",
        [(3, 15, "middlewares[0]", "must be a mapping, not 'auth'")],
    ),
    (
        "handler-not-string",
        "version: 1\nruntime:\n  handler: 5\n",
        [(3, 12, "runtime.handler", "must be a string, not 5")],
    ),
    (
        "command-not-list",
        "version: 1\nruntime: {language: exec, command: ./run}\n",
        [(2, 36, "runtime.command", "must be a list, not './run'")],
    ),
    (
        "command-item-not-string",
        "version: 1\nruntime: {language: exec, command: [1]}\n",
        [(2, 37, "runtime.command[0]", "must be a string, not 1")],
    ),
    (
        "duration-word",
        H + "timeouts: {grace: fast}\n",
        [(3, 19, "timeouts.grace", "'fast' is not a duration")],
    ),
    (
        "duration-negative-unit",
        H + "middlewares:\n  - name: a\n    timeout: -5ms\n",
        [(5, 14, "middlewares[0].timeout", "'-5ms' is not a duration")],
    ),
    (
        "duration-negative-number",
        H + "timeouts:\n  middleware: -1\n",
        [(4, 15, "timeouts.middleware", "must be more than 0")],
    ),
    (
        "duration-zero-string",
        H + "timeouts:\n  middleware: 0s\n",
        [(4, 15, "timeouts.middleware", "must be more than 0")],
    ),
    (
        "duration-bool",
        H + "middlewares:\n  - name: a\n    timeout: {after: true}\n",
        [(5, 22, "middlewares[0].timeout.after", "true is not a duration")],
    ),
    (
        "unknown-language",
        "version: 1\nruntime:\n  language: ruby\n  handler: a.b\n",
        [(3, 13, "runtime.language", "unknown language 'ruby': use one of python, node, exec")],
    ),
    (
        "bad-signature",
        "version: 1\nruntime:\n  handler: a.b\n  signature: cloud\n",
        [(4, 14, "runtime.signature", "unknown signature 'cloud'")],
    ),
    (
        "duplicate-key-and-more",
        H + "runtime:\n  signature: cloud\n",
        [
            (3, 1, "runtime", "duplicate key 'runtime' (first at line 2, column 1)"),
            (4, 14, "runtime.signature", "unknown signature 'cloud'"),
        ],
    ),
    (
        "bad-on-error",
        H + "middlewares:\n  - name: a\n    on_error: ignore\n",
        [(5, 15, "middlewares[0].on_error", "use one of fail, continue")],
    ),
    (
        "bad-mode",
        H + "middlewares:\n  - name: a\n    mode: daemon\n",
        [(5, 11, "middlewares[0].mode", "unknown mode 'daemon': use one of exec, persistent")],
    ),
    (
        "bad-hook",
        H + "middlewares:\n  - name: a\n    hooks: [before, during]\n",
        [(5, 21, "middlewares[0].hooks[1]", "unknown hook 'during'")],
    ),
    (
        "empty-hooks",
        H + "middlewares:\n  - name: a\n    hooks: []\n",
        [(5, 12, "middlewares[0].hooks", "must not be empty")],
    ),
    (
        "repeated-hook",
        H + "middlewares:\n  - name: a\n    hooks: [after, after]\n",
        [(5, 20, "middlewares[0].hooks[1]", "'after' is listed twice")],
    ),
    (
        "missing-version",
        "runtime: {handler: a.b}\n",
        [(1, 1, "", "missing required key 'version'")],
    ),
    ("wrong-version", "version: 2\n", [(1, 10, "version", "unsupported version 2")]),
    ("version-as-string", "version: '1'\n", [(1, 10, "version", "unsupported version '1'")]),
    (
        "python-handler-without-function",
        "version: 1\nruntime:\n  handler: hello\n",
        [(3, 12, "runtime.handler", "not of the form module.function")],
    ),
    (
        "node-handler-malformed",
        "version: 1\nruntime:\n  language: node\n  handler: index.\n",
        [(4, 12, "runtime.handler", "not of the form module.function for node")],
    ),
    (
        "handler-escapes",
        "version: 1\nruntime:\n  handler: ../up.handler\n",
        [(3, 12, "runtime.handler", "must stay inside the function folder")],
    ),
    (
        "exec-without-command",
        "version: 1\nruntime:\n  language: exec\n",
        [(3, 13, "runtime.language", "language exec needs `command`")],
    ),
    (
        "name-with-slash",
        H + "middlewares:\n  - name: sub/auth\n",
        [(4, 11, "middlewares[0].name", "must not contain '/'")],
    ),
    (
        "name-with-dotdot",
        H + "middlewares:\n  - name: a..b\n",
        [(4, 11, "middlewares[0].name", "must not contain '..'")],
    ),
    (
        "name-with-backslash",
        H + "middlewares:\n  - name: 'a\\b'\n",
        [(4, 11, "middlewares[0].name", "must not contain '\\\\'")],
    ),
    (
        "name-hidden",
        H + "middlewares:\n  - name: .hidden\n",
        [(4, 11, "middlewares[0].name", "must not start with '.'")],
    ),
    (
        "name-empty",
        H + "middlewares:\n  - name: ''\n",
        [(4, 11, "middlewares[0].name", "must not be empty")],
    ),
    (
        "name-missing",
        H + "middlewares:\n  - path: ./x\n",
        [(4, 5, "middlewares[0]", "missing required key 'name'")],
    ),
    (
        "duplicate-names",
        H + "middlewares:\n  - name: auth\n  - name: audit\n  - name: auth\n",
        [
            (
                6,
                11,
                "middlewares[2].name",
                "duplicate middleware name 'auth' (already middlewares[0])",
            )
        ],
    ),
    (
        "hook-timeout-beyond-lambda",
        H + "middlewares:\n  - name: a\n    timeout: {error: 16m}\n",
        [(5, 22, "middlewares[0].timeout.error", "can never be reached")],
    ),
    (
        "inf-middleware-timeout",
        H + "middlewares:\n  - name: a\n    timeout: .inf\n",
        [(5, 14, "middlewares[0].timeout", ".inf is not a duration")],
    ),
    (
        "minus-inf-default-middleware-timeout",
        H + "timeouts:\n  middleware: -.inf\n",
        [(4, 15, "timeouts.middleware", "-.inf is not a duration")],
    ),
    (
        "huge-integer-timeout",
        H + "timeouts: {middleware: 1" + "0" * 40 + "}\n",
        [(3, 24, "timeouts.middleware", "a number beyond 10**15 (1e+40 s) can never be reached")],
    ),
    (
        "timeout-beyond-lambda",
        H + "timeouts: {middleware: 901}\n",
        [(3, 24, "timeouts.middleware", "at most 900 s")],
    ),
    (
        "yaml-unclosed-flow",
        "version: 1\nruntime: {handler: a.b\n",
        [(3, 1, "", "YAML syntax error")],
    ),
    (
        "yaml-bad-indent",
        "version: 1\nruntime:\n  handler: a.b\n language: node\n",
        [(4, 2, "", "YAML syntax error")],
    ),
    (
        "yaml-duplicate-key",
        "version: 1\nversion: 1\n",
        [(2, 1, "version", "duplicate key 'version' (first at line 1, column 1)")],
    ),
    ("empty-file", "", [(1, 1, "", "the file is empty")]),
    ("comments-only", "# nothing here\n", [(1, 1, "", "the file is empty")]),
    (
        "list-at-top",
        "- version: 1\n",
        [(1, 1, "", "the top level must be a mapping of keys, not a list")],
    ),
    ("scalar-at-top", "version 1\n", [(1, 1, "", "not a single value")]),
    (
        "debug-enabled-string",
        H + "debug: {enabled: 'true'}\n",
        [(3, 18, "debug.enabled", "must be true or false, not 'true'")],
    ),
    (
        "debug-allow-bad-host",
        H + "debug:\n  allow: [10.0.0.0/8, 'bad host']\n",
        [(4, 23, "debug.allow[1]", "neither a host name nor a network")],
    ),
    (
        "debug-allow-empty-label",  # the same host rule as sor.runtime.debug's (test_debug.py)
        H + 'debug:\n  allow: [relay.example.com, a..b, "c.d\\n"]\n',
        [
            (4, 30, "debug.allow[1]", "'a..b' is neither a host name nor a network"),
            (4, 36, "debug.allow[2]", "'c.d\\n' is neither a host name nor a network"),
        ],
    ),
    (
        "partial-batch-not-bool",
        H + "cloudevents: {partial_batch_response: 1}\n",
        [(3, 39, "cloudevents.partial_batch_response", "must be true or false, not 1")],
    ),
    (
        "mapping-without-match",
        H + "cloudevents:\n  mappings:\n    - MAPATTRS\n",
        [(5, 7, "cloudevents.mappings[0]", "missing required key 'match'")],
    ),
    (
        "mapping-attributes-missing-required",
        H + "cloudevents:\n  mappings:\n    - match: {}\n      attributes: {id: $.id}\n",
        [
            (6, 19, "cloudevents.mappings[0].attributes", "missing required key 'source'"),
            (6, 19, "cloudevents.mappings[0].attributes", "missing required key 'type'"),
        ],
    ),
    (
        "mapping-match-key-not-a-path",
        H + "cloudevents:\n  mappings:\n    - match: {source: x}\n      MAPATTRS\n",
        [
            (
                5,
                14,
                "cloudevents.mappings[0].match",
                "key 'source' is not valid here: A field path: $",
            )
        ],
    ),
    (
        "mapping-unknown-condition",
        H + "cloudevents:\n  mappings:\n    - match: {$.a: {like: 1}}\n      MAPATTRS\n",
        [(5, 21, "cloudevents.mappings[0].match.$.a.like", "allowed keys are equals, exists")],
    ),
    (
        "mapping-records-not-a-path",
        H + "cloudevents:\n  mappings:\n    - match: {}\n      records: Records\n      MAPATTRS\n",
        [(6, 16, "cloudevents.mappings[0].records", "'Records' is not valid here: A field path")],
    ),
    (
        "mapping-malformed-path",
        H + "cloudevents:\n  mappings:\n    - match: {}\n      MAPATTRS\n      data: $.a..b\n",
        [(7, 13, "cloudevents.mappings[0].data", "'$.a..b' is not valid here: A field path")],
    ),
    (
        "mapping-malformed-template",
        H + "cloudevents:\n  mappings:\n    - match: {}\n"
        "      attributes: {id: $.id, source: s, type: 'x.{$..t}'}\n",
        [
            (
                6,
                47,
                "cloudevents.mappings[0].attributes.type",
                "'x.{$..t}' is not valid here: A constant",
            )
        ],
    ),
    (
        "mapping-bad-epoch",
        H + "cloudevents:\n  mappings:\n    - match: {}\n"
        "      attributes: {id: $.id, source: s, type: t, time: {path: $.t, epoch: h}}\n",
        [(6, 75, "cloudevents.mappings[0].attributes.time.epoch", "unknown epoch 'h'")],
    ),
    (
        "mapping-unknown-attribute",
        H + "cloudevents:\n  mappings:\n    - match: {}\n"
        "      attributes: {id: $.id, source: s, type: t, colour: red}\n",
        [(6, 50, "cloudevents.mappings[0].attributes.colour", "unknown key 'colour'")],
    ),
    (
        "mapping-extension-name",
        H + "cloudevents:\n  mappings:\n    - match: {}\n"
        "      attributes: {id: $.id, source: s, type: t, extensions: {Bad_Name: x}}\n",
        [
            (
                6,
                62,
                "cloudevents.mappings[0].attributes.extensions",
                "key 'Bad_Name' is not valid here: Extension attributes: lowercase letters",
            )
        ],
    ),
]
BAD = [
    (i, text.replace("MAPATTRS", "attributes: {id: $.id, source: s, type: t}"), e)
    for i, text, e in BAD
]

# NaN durations: the rules refuse them. They are kept out of BAD, which test_schema_lite.py also
# uses as its corpus of schema verdicts: jsonschema lets NaN through every numeric bound (NaN <= 0
# is false) where sor.config.schema_lite refuses it. Either way sor reports the rules' problem.
BAD_NAN: list[tuple[str, str, list[tuple[int, int, str, str]]]] = [
    (
        "nan-grace",
        H + "timeouts: {grace: .nan}\n",
        [(3, 19, "timeouts.grace", ".nan is not a duration: a duration is a finite number")],
    ),
    (
        "nan-hook-timeout",
        H + "middlewares:\n  - name: a\n    timeout: {before: .NaN}\n",
        [(5, 23, "middlewares[0].timeout.before", ".nan is not a duration")],
    ),
]
