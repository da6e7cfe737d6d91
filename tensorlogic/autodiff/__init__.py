"""Reverse-mode autodiff as a transformation of the IR: gradient equations of the same form.

- `reverse.py`: the adjoint pushed down each equation's expression tree (`differentiate`).
- `exprs.py`: expression tools and the built-in functions' derivatives.
- `printer.py`: IR equations back to `.tl` source.
- `program.py`: the gradient program's text (`gradient_source`, what `tl grad` prints).
- `history.py`: `set history = 1`, virtual indices that keep every step (backpropagation through time).
"""
