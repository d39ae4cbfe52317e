"""Label values written into PromQL string literals, escaped: a value with a double
quote or a backslash (a Pushgateway takes any label value) must still select its
own series, never end the literal early or break the query.

PromQL follows Go's escaping rules for string literals. Two moments need it: a
value known when the rules and dashboards are generated (`string`), and a value an
alert's template reads from the alert's labels when Prometheus evaluates it
(`alert_label_matcher`: Go's %q, the same escaping, applied by the template).
"""

from __future__ import annotations

import json


def string(value: str) -> str:
    """`value` as a double-quoted PromQL string literal: `a"b\\c` -> `"a\\"b\\\\c"`.

    JSON's escapes (\\" \\\\ \\n \\t \\uXXXX ...) are a subset of Go's; non-ASCII text
    stays as it is (PromQL reads UTF-8), so nothing needs a \\U escape JSON lacks."""
    return json.dumps(value, ensure_ascii=False)


def alert_label_matcher(label: str) -> str:
    """A matcher on the alert's own `label`, for a query its template builds with
    `printf ... $labels.<label>`: `scope=%q`. Go's %q writes the value as a quoted
    Go string, which PromQL reads back as the value itself."""
    return f"{label}=%q"
