"""From ArchSpec to nn.Module: layers, block families, stems, the builder and analytic complexity.

The only stage that defines torch modules; it reads specs and never imports measurement or search.
"""
