"""Plotly figures for the Compare page: an interactive slice heat map and a 3D anatomy view."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from apps.analysis import Surface


def difference_heatmap(
    diff_slice: np.ndarray, spacing_yx: tuple[float, float], title: str
) -> go.Figure:
    """Signed difference of one slice, symmetric colour range, hover shows the value."""
    lim = float(np.percentile(np.abs(diff_slice), 99.5)) or 1.0
    sy, sx = spacing_yx
    fig = go.Figure(
        go.Heatmap(
            z=diff_slice,
            x=np.arange(diff_slice.shape[1]) * sx,
            y=np.arange(diff_slice.shape[0]) * sy,
            colorscale="RdBu_r",
            zmin=-lim,
            zmax=lim,
            colorbar={"title": "A - B"},
        )
    )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", title="y (mm)")
    fig.update_xaxes(title="x (mm)", constrain="domain")
    fig.update_layout(title=title, height=420, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def slice_stack(
    volumes: dict[str, np.ndarray], z: int, ranges: dict[str, tuple[float, float]]
) -> go.Figure:
    """The same slice of several volumes as grey heat maps sharing zoom and pan."""
    from plotly.subplots import make_subplots

    names = list(volumes)
    fig = make_subplots(1, len(names), subplot_titles=names, shared_yaxes=True, shared_xaxes=True)
    for i, name in enumerate(names, start=1):
        lo, hi = ranges[name]
        fig.add_trace(
            go.Heatmap(z=volumes[name][z], colorscale="gray", zmin=lo, zmax=hi, showscale=False),
            1,
            i,
        )
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def anatomy_3d(parts: list[Surface]) -> go.Figure:
    """Liver (translucent), vessels and lesions as surfaces in patient mm."""
    opacity = {"liver": 0.25, "vessels": 0.9, "lesions": 1.0}
    fig = go.Figure()
    for s in parts:
        x, y, z = s.vertices.T
        i, j, k = s.faces.T
        fig.add_trace(
            go.Mesh3d(
                x=x,
                y=y,
                z=z,
                i=i,
                j=j,
                k=k,
                color=f"rgb{s.colour}",
                opacity=opacity.get(s.name, 1.0),
                name=s.name,
                showlegend=True,
            )
        )
    fig.update_layout(
        scene={"aspectmode": "data", "yaxis": {"autorange": "reversed"}},
        height=480,
        margin={"l": 0, "r": 0, "t": 30, "b": 0},
    )
    return fig
