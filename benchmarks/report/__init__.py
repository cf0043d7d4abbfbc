"""`hidiff bench report`: one offline HTML report, PNG figures and a markdown summary.

Inputs are the records other commands wrote (device JSON, the accuracy harness's folder, the
compression ledger); nothing is recomputed here, so every verdict in the report is the one its
producer wrote. A missing input is left out with a note, never filled in.
"""
