"""The pure domain of online-meeting appointments.

Nothing in this package imports azure, msgraph or any other infrastructure: it is
the model, the lifecycle state machine, the time rules, the codes and the settings.
"""
