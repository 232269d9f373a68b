"""``.. runblock::``: run Python code at build time and show it with its output.

The code of all run blocks of one page runs in one namespace, in page order, so
a later block can use what an earlier one defined. An exception fails the build
(it is reported as an error, and ``-W`` turns it into a failure). Used by the
user guide so that every number it quotes is produced when the docs are built.
"""

import contextlib
import io
import time
import traceback

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


class RunBlock(SphinxDirective):
    has_content = True
    option_spec = {"hide-code": directives.flag, "hide-output": directives.flag}

    def run(self):
        code = "\n".join(self.content)
        namespace = self.env.temp_data.setdefault(
            "runblock_namespace", {"__name__": "__runblock__"}
        )
        out = io.StringIO()
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"<{self.env.docname}:{self.lineno}>", "exec"),
                     namespace)
        except Exception:
            raise self.error(
                "runblock failed:\n" + traceback.format_exc(limit=-3)
            ) from None
        logger.info("runblock %s:%s ran in %.1f s", self.env.docname, self.lineno,
                    time.perf_counter() - start)
        result = []
        if "hide-code" not in self.options:
            block = nodes.literal_block(code, code, language="python")
            result.append(block)
        text = out.getvalue().rstrip("\n")
        if text and "hide-output" not in self.options:
            result.append(nodes.literal_block(text, text, language="none",
                                              classes=["runblock-output"]))
        return result


def setup(app):
    app.add_directive("runblock", RunBlock)
    return {"version": "1.0", "parallel_read_safe": False,
            "parallel_write_safe": True}
