"""sphinx-gallery's matplotlib scraper, saving with ``bbox_inches="tight"``.

The tutorials' figures are then cut like the figures of the pages (docs/conf.py: ``plot_rcparams``):
a legend placed beside the axes, off the data, and the axis labels stay inside the image. docs/conf.py
names this module in ``sphinx_gallery_conf["image_scrapers"]``; sphinx-gallery imports it and calls
``_get_sg_image_scraper()``. A module rather than a function in conf.py, because Sphinx pickles the
configuration and cannot pickle what conf.py defines.
"""


def tight_matplotlib_scraper(block, block_vars, gallery_conf):
    from sphinx_gallery.scrapers import matplotlib_scraper

    return matplotlib_scraper(block, block_vars, gallery_conf, bbox_inches="tight")


def _get_sg_image_scraper():
    return tight_matplotlib_scraper
