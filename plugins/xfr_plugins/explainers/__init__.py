"""Built-in explainers (registered through the xfr entry point 'explainers')."""

from xfr.hookspecs import hookimpl


@hookimpl
def xfr_explainers():
    from xfr_plugins.explainers.avg import AVGExplainer
    from xfr_plugins.explainers.lime import LIMEExplainer
    from xfr_plugins.explainers.minplus import MinPlusExplainer
    from xfr_plugins.explainers.paper import PaperExplainer
    from xfr_plugins.explainers.rise import RISEExplainer

    return {
        "paper": PaperExplainer,
        "minplus": MinPlusExplainer,
        "avg": AVGExplainer,
        "rise": RISEExplainer,
        "lime": LIMEExplainer,
    }
