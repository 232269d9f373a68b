"""The audit report cannot run script (#38): every string of the model file's
description, hostile, gives a page with exactly the elements of a benign one.

Property-based over the description (hypothesis): each string field gets a
drawn payload (script tags, event handlers, ``</style>``, ``javascript:``
URLs, arbitrary Unicode); the page must parse to the same sequence of
elements and attributes as the page of the same description with plain
strings, hold no script element and no event-handler attribute, and carry the
Content-Security-Policy that forbids scripts. The browser test is in
test_report_browser.py.
"""

import json
from html.parser import HTMLParser

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sklearn_llmconf import cli  # noqa: E402
from sklearn_llmconf.cli import _common, _html, _report  # noqa: E402
from sklearn_llmconf.persistence import load_model  # noqa: E402
from sklearn_llmconf.testing import KeywordBackend  # noqa: E402
from tests._model_files import PAYLOADS, replace_strings  # noqa: E402
from tests.test_cli_workflow import write_csv  # noqa: E402


class Elements(HTMLParser):
    """Start tags with their attribute names, and the text of style elements."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.styles, self._in_style = [], [], [], False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(sorted(a for a, _ in attrs))))
        self.attrs += attrs
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One real model file (keyword backend): its description and extras."""
    tmp = tmp_path_factory.mktemp("hostile")
    rows = [[f"note {i} {'spam' if i % 2 else 'ham'}", "spam" if i % 2 else "ham"]
            for i in range(80)]
    lab = write_csv(tmp / "lab.csv", ["body", "kind"], rows)
    model = str(tmp / "m.skops")
    saved = _common._local_backend
    _common._local_backend = lambda path: KeywordBackend()
    try:
        assert cli.main(["fit", lab, "--text-column", "body", "--label-column",
                         "kind", "--n-shots", "2", "--tiers", "accept=0.9,review=0.7",
                         "--quiet", "-o", model]) == 0
    finally:
        _common._local_backend = saved
    _, desc, extras = load_model(model, check=False)
    desc["data"]["extra <b>key</b>"] = "value"
    return desc, extras


def render(desc, extras, classes_map):
    """The page for ``desc`` (certification labels renamed like the classes)."""
    extras = dict(extras)
    extras["certification_y"] = np.array(
        [classes_map[c] for c in extras["certification_y"]], dtype=object)
    _common.check_description(desc)
    return _html.page(f"report: {desc['data']['source']}",
                      _report._sections(desc, extras, None))


def variant(desc, new):
    out = replace_strings(desc, new)
    classes_map = dict(zip(desc["classes"], out["classes"]))
    return out, classes_map


def check_no_injection(page, plain_page):
    got, want = Elements(page), Elements(plain_page)
    assert got.tags == want.tags  # no element or attribute the report did not write
    assert not any(tag == "script" for tag, _ in got.tags)
    assert not any(name.startswith("on") for name, _ in got.attrs)
    assert not any("javascript:" in (value or "").lower() for _, value in got.attrs)
    assert got.styles == want.styles == [_html.STYLE]
    assert f'<meta http-equiv="Content-Security-Policy" content="{_html.CSP}">' \
        in page
    assert "script-src 'none'" in _html.CSP


hostile_text = st.one_of(
    st.sampled_from(PAYLOADS),
    st.builds(lambda a, p, b: a + p + b, st.text(max_size=8),
              st.sampled_from(PAYLOADS), st.text(max_size=8)),
    st.text(alphabet=st.sampled_from("<>&\"'/=:; ascriptonerrojv\n\x00\u2028"),
            max_size=40),
)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_string_of_the_description_is_inert(fitted, data):
    desc, extras = fitted
    drawn = {}

    def hostile(path, old):
        # unique per field, so that tier and class names stay distinct
        drawn[path] = data.draw(hostile_text, label="/".join(map(str, path)))
        return f"{drawn[path]}#{len(drawn)}"

    bad, bad_map = variant(desc, hostile)
    plain, plain_map = variant(desc, lambda path, old: f"field{len(path)}x")
    plain["classes"] = [f"class{i}" for i in range(len(desc["classes"]))]
    plain_map = dict(zip(desc["classes"], plain["classes"]))
    plain["certificate"]["tiers"] = [f"tier{i}" for i in
                                     range(len(desc["certificate"]["tiers"]))]
    check_no_injection(render(bad, extras, bad_map),
                       render(plain, extras, plain_map))


def test_each_payload_in_every_field(fitted):
    desc, extras = fitted
    plain, plain_map = variant(desc, lambda path, old: f"p{hash(path) % 997}")
    plain_page = render(plain, extras, plain_map)
    for payload in PAYLOADS:
        bad, bad_map = variant(
            desc, lambda path, old, payload=payload: f"{payload}{hash(path)}")
        page = render(bad, extras, bad_map)
        check_no_injection(page, plain_page)
        assert payload not in page  # never verbatim: escaped


def test_the_four_fields_written_raw_before_are_escaped(fitted):
    # Regression (#38): label_separator, method, n_calibration and
    # n_failed_calibration went into the page unescaped.
    desc, extras = fitted
    bad = json.loads(json.dumps(desc))
    bad["prompt"]["label_separator"] = "</p><script>alert(1)</script><p>"
    bad["certificate"]["method"] = "<img src=x onerror=alert(2)>"
    page = render(bad, extras, {c: c for c in desc["classes"]})
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;/p&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;p&gt;" in page
    assert "method &lt;img src=x onerror=alert(2)&gt;" in page
    for field in ("n_calibration", "n_failed_calibration", "delta"):
        wrong = json.loads(json.dumps(desc))
        wrong["certificate"][field] = "<b>9</b>"
        with pytest.raises(Exception, match=f"certificate.{field} is str"):
            from sklearn_llmconf._persistence import validate_description

            validate_description(wrong)


def test_label_separator_from_python_is_escaped(tmp_path, monkeypatch):
    # The separator reached the page from PromptTemplate too.
    from sklearn.frozen import FrozenEstimator

    from sklearn_llmconf import LLMClassifier
    from sklearn_llmconf.persistence import save_model
    from sklearn_llmconf.prompts import DEFAULT_TEMPLATE, PromptTemplate
    from sklearn_llmconf.routing import ConfidenceRouter

    X = [f"t{i} {'spam' if i % 2 else 'ham'}" for i in range(60)]
    y = ["spam" if i % 2 else "ham" for i in range(60)]
    sep = "</p><script>alert(1)</script><p>"
    clf = LLMClassifier(PromptTemplate(DEFAULT_TEMPLATE, label_separator=sep),
                        backend=KeywordBackend(), n_shots=0).fit(X[:30], y[:30])
    router = ConfidenceRouter(FrozenEstimator(clf), tiers=[("accept", 0.6)])
    router.fit(X[30:], y[30:])
    model = tmp_path / "sep.skops"
    save_model(model, router, certification_proba=router.predict_proba(X[30:]),
               certification_y=y[30:], metadata={
                   "data": {"source": "x.csv", "text_columns": ["body"],
                            "field_columns": None, "label_column": "kind"},
                   "usage": {}, "versions": {}, "created": "today"})
    out = tmp_path / "r.html"
    assert cli.main(["report", str(model), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert "<script>" not in page
    assert "Labels joined by &#39;&lt;/p&gt;&lt;script&gt;alert(1)" in page
