"""`RunsTable`: Textual's `DataTable`, with one-line body cells drawn straight to segments
and measured by their plain text.

The stock table draws every cell through Rich's general renderer (`Padding` in `Styled`,
markup parsed for `str` values): ~1.5 ms a row here. Any cell update makes it draw all visible
rows again, which the runs table does several times a second under load and on every page
down. Drawing the cell's text, padded and cropped to the column, with the same styles and the
same `row`/`column` meta (mouse clicks), gives the same lines at ~2.5x less cost
(scripts/bench_tui.py). Likewise each new row's cells were measured through Rich to size the
columns; a one-line cell's width is its text's cell length. It leans on `DataTable` internals,
so anything unexpected (headers, fixed rows, taller rows, another Textual) takes the stock
path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.widgets import DataTable


class RunsTable(DataTable[Any]):
    def _update_dimensions(self, new_rows: Iterable[Any]) -> None:
        """Column widths from the new rows' plain text (the stock one measures each cell with
        Rich: most of the cost of showing a page of 100 runs)."""
        new_rows = list(new_rows)
        try:
            rows = [self.rows[key] for key in new_rows if key in self.rows]
            if any(row.label is not None or row.auto_height for row in rows):
                raise TypeError("labelled or auto-height rows")
            columns = self.ordered_columns
            for row in rows:
                for column in columns:
                    value = self._data[row.key].get(column.key, "")
                    width = value.cell_len if isinstance(value, Text) else cell_len(str(value))
                    column.content_width = max(column.content_width, width)
        except (AttributeError, KeyError, TypeError):
            super()._update_dimensions(new_rows)
            return
        width = sum(column.get_render_width(self)
                    for column in self.columns.values()) + self._row_label_column_width
        self.virtual_size = Size(width, self._total_row_height + (self.header_height
                                                                  if self.show_header else 0))

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> Any:
        try:
            fast = self._fast_cell(row_index, column_index, base_style, width, cursor, hover)
        except (AttributeError, KeyError, TypeError):
            fast = None
        if fast is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        return fast

    def _fast_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                   cursor: bool, hover: bool) -> list[list[Segment]] | None:
        if row_index < max(0, self.fixed_rows) or column_index < max(0, self.fixed_columns):
            return None  # the header, row labels and fixed cells have styles of their own
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        if row_key is None or column_key is None or self.rows[row_key].height != 1:
            return None
        # the stock cache key, so both paths share the cache and its invalidation
        cache_key = (row_key, column_key, base_style, cursor, hover, self._show_hover_cursor,
                     self._update_count, self._pseudo_class_state)
        cached = self._cell_render_cache.get(cache_key)
        if cached is not None:
            return cached
        value = self._data[row_key][column_key]
        text = value if isinstance(value, Text) else Text(str(value))
        component_style, post_style = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        pre_style = base_style + Style.from_meta({"row": row_index,
                                                  "column": column_index}) + component_style
        console = self.app.console
        inner = list(text.render(console))
        if text.style:
            inner = list(Segment.apply_style(inner, console.get_style(text.style)))
        pad = Segment(" " * self.cell_padding)
        line = [pad, *Segment.adjust_line_length(inner, max(0, width - 2 * self.cell_padding)), pad]
        lines = [list(Segment.apply_style(line, pre_style, post_style))]
        self._cell_render_cache[cache_key] = lines
        return lines
