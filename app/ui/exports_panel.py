"""This session's exports as a list of thumbnails; activating one opens the exported image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QGroupBox, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from app.ui.controls import format_clock

THUMB_SIZE = QSize(128, 72)


def open_with_system(path: Path) -> bool:
    """Open ``path`` with the desktop's default application."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def thumbnail(path: Path, size: QSize = THUMB_SIZE) -> QIcon:
    """A small icon of an image file (empty icon if it cannot be read)."""
    image = QImage(str(path))
    if image.isNull():
        return QIcon()
    scaled = image.scaled(
        size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    return QIcon(QPixmap.fromImage(scaled))


class ExportsPanel(QGroupBox):
    """Thumbnails of the snapshots exported in this session, newest first.

    Args:
        opener: how an export is opened (default: the desktop's viewer); tests pass a stub.
    """

    def __init__(
        self, parent: QWidget | None = None, opener: Callable[[Path], object] = open_with_system
    ) -> None:
        super().__init__("Exports (this session)", parent)
        self.opener = opener
        layout = QVBoxLayout(self)
        self.list = QListWidget(self)
        self.list.setObjectName("exports_list")
        self.list.setIconSize(THUMB_SIZE)
        self.list.setMinimumHeight(120)
        self.list.setToolTip("Double-click to open the exported image")
        self.list.itemActivated.connect(self._activated)
        layout.addWidget(self.list)

    def add_export(self, record) -> QListWidgetItem:
        """Add one ``ExportRecord`` at the top of the list."""
        when = format_clock(record.position_s) if record.position_s is not None else ""
        text = f"frame {record.frame_index}" + (f"  @ {when}" if when else "")
        text += f"\n{record.overlay.name}"
        item = QListWidgetItem(thumbnail(record.overlay), text)
        item.setData(Qt.ItemDataRole.UserRole, str(record.overlay))
        item.setToolTip(f"{record.overlay}\n{record.raw.name}\n{record.sidecar.name}")
        self.list.insertItem(0, item)
        return item

    def paths(self) -> list[Path]:
        """The overlay images listed, newest first."""
        return [
            Path(self.list.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.list.count())
        ]

    def open_item(self, row: int) -> None:
        """Open the export in ``row``."""
        item = self.list.item(row)
        if item is not None:
            self._activated(item)

    def _activated(self, item: QListWidgetItem) -> None:
        self.opener(Path(item.data(Qt.ItemDataRole.UserRole)))
