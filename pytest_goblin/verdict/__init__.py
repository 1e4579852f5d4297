"""From a settled report to an item outcome.

``rule`` holds the one bar rule (the confirm loop's stopping rule calls it too);
``result`` builds the WorkloadResult every report is made from; ``gates`` adds the
budgets and the history regression; ``known_gaps`` turns an accepted win into an xfail.
"""
