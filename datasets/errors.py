"""The one exception the dataset builders raise for bad user input."""

#----------------------------------------------------------------------------

class DatasetError(Exception):
    """A problem with the user's input, explained in one sentence (what is wrong, what to do).

    `dataset_tool.py` turns it into a message and a non-zero exit code without a traceback.
    """

#----------------------------------------------------------------------------
