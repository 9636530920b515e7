"""`RunsTable`: Textual's `DataTable`, with one-line body cells drawn straight to segments
and measured by their plain text, and columns that fit the table's width.

Fitting: a table narrower than its columns would cut the last one it reaches mid-value (a
duration `162ms` read `162m`). Instead, each table says which columns may give up width (down
to a least width; their values end in `…`) and which are hidden first when that is not enough;
the others always show whole. `fit()` runs when rows arrive and when the table is resized.

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
from textual.widgets._data_table import Column


class FitColumn(Column):
    """A column whose width the table may cap (0: hidden)."""

    cap: int | None = None

    def get_render_width(self, data_table: DataTable[Any]) -> int:
        if self.cap == 0:
            return 0
        width = self.content_width if self.auto_width else self.width
        if self.cap is not None:
            width = min(width, self.cap)
        return 2 * data_table.cell_padding + width


def _caps(natural: dict[str, int], shrink: dict[str, int], hidden: list[str], room: int,
          pad: int) -> dict[str, int] | None:
    """Widths for the shrinkable columns so that all shown columns fit in `room` (empty: all
    fit as they are); None when they cannot, even at their least widths."""
    shown = [k for k in natural if k not in hidden]
    excess = sum(natural[k] + pad for k in shown) - room
    if excess <= 0:
        return {}
    widths = {k: natural[k] for k in shown if k in shrink and natural[k] > shrink[k]}
    if sum(widths[k] - shrink[k] for k in widths) < excess:
        return None
    while excess > 0:  # the widest gives first, one cell at a time: they end up even
        widest = max(widths, key=lambda k: widths[k] - shrink[k])
        widths[widest] -= 1
        excess -= 1
    return {k: w for k, w in widths.items() if w < natural[k]}


class RowTable(DataTable[Any]):
    """A DataTable whose Home and End move a row cursor to the first and last row, with the
    view. The stock keys scroll sideways only, so Enter then opened a row the user had not
    picked (and, once the view was scrolled, one off screen); Home and End now do what
    Ctrl+Home and Ctrl+End do."""

    def action_scroll_home(self) -> None:
        if self.cursor_type == "row" and self.show_cursor:
            self.action_scroll_top()
        else:
            super().action_scroll_home()

    def action_scroll_end(self) -> None:
        if self.cursor_type == "row" and self.show_cursor:
            self.action_scroll_bottom()
        else:
            super().action_scroll_end()


class FitTable(RowTable):
    """A DataTable whose columns fit its width (see the module docstring)."""

    #: column key → the least width it shrinks to
    narrows: dict[str, int] = {}
    #: column keys hidden, in this order, when shrinking is not enough
    drop_order: tuple[str, ...] = ()

    def add_column(self, *args: Any, **kwargs: Any) -> Any:
        key = super().add_column(*args, **kwargs)
        self.columns[key].__class__ = FitColumn  # same fields, a render width that obeys a cap
        return key

    def on_resize(self) -> None:
        self.fit()

    def fit(self) -> None:
        room = self.scrollable_content_region.width
        columns = [c for c in self.ordered_columns if isinstance(c, FitColumn)]
        if room <= 0 or not columns:
            return
        natural = {str(c.key.value): c.content_width if c.auto_width else c.width
                   for c in columns}
        hidden: list[str] = []
        drop = [k for k in self.drop_order if k in natural]
        while (caps := _caps(natural, self.narrows, hidden, room, 2 * self.cell_padding)) is None \
                and drop:
            hidden.append(drop.pop(0))
        wanted = {**(caps or {}), **{k: 0 for k in hidden}}
        if all(c.cap == wanted.get(str(c.key.value)) for c in columns):
            return
        for column in columns:
            column.cap = wanted.get(str(column.key.value))
        self._update_count += 1
        self._clear_caches()
        self.virtual_size = Size(sum(c.get_render_width(self) for c in self.columns.values())
                                 + self._row_label_column_width, self.virtual_size.height)
        self.refresh()

    def _update_dimensions(self, new_rows: Iterable[Any]) -> None:
        super()._update_dimensions(new_rows)
        self.fit()

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> Any:
        if width <= 0:  # a hidden column
            return [[] for _ in range(max(self.header_height, 1))]
        return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)


class RunsTable(FitTable):
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
        self.fit()

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False) -> Any:
        try:
            fast = self._fast_cell(row_index, column_index, base_style, width, cursor, hover) \
                if width > 0 else None
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
        inner_width = max(0, width - 2 * self.cell_padding)
        if text.cell_len > inner_width:  # a capped column: the value ends in "…"
            text = text.copy()
            text.truncate(inner_width, overflow="ellipsis")
        inner = list(text.render(console))
        if text.style:
            inner = list(Segment.apply_style(inner, console.get_style(text.style)))
        pad = Segment(" " * self.cell_padding)
        line = [pad, *Segment.adjust_line_length(inner, inner_width), pad]
        lines = [list(Segment.apply_style(line, pre_style, post_style))]
        self._cell_render_cache[cache_key] = lines
        return lines
