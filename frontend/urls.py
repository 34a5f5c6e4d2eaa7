from django.contrib.auth import views as auth_views
from django.urls import path

from . import views, views_events, views_flows, views_listeners, views_messages, views_resources, views_runs
from .forms import LoginForm

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="frontend/login.html", authentication_form=LoginForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("dashboard/data", views.dashboard_data, name="dashboard-data"),
    path("messages/", views_messages.message_list, name="messages"),
    path("messages/resubmit", views_messages.message_bulk_resubmit, name="messages-resubmit"),
    path("messages/<uuid:pk>/", views_messages.message_detail, name="message"),
    path("messages/<uuid:pk>/download", views_messages.message_download, name="message-download"),
    path("messages/<uuid:pk>/<str:action>", views_messages.message_action, name="message-action"),
    path("subscriptions/", views_events.subscription_list, name="subscriptions"),
    path("subscriptions/<int:pk>/rotate-secret", views_events.subscription_rotate_secret, name="subscription-rotate-secret"),
    path("subscriptions/<int:pk>/deliveries/<int:delivery_id>/redeliver", views_events.delivery_redeliver,
         name="delivery-redeliver"),
    path("queues/", views_events.queue_list, name="queues"),
    path("runs/", views_runs.run_list, name="runs"),
    path("runs/progress", views_runs.run_progress, name="runs-progress"),
    path("listeners/<int:pk>/", views_listeners.listener_detail, name="listener"),
    path("listeners/<int:pk>/test", views_listeners.listener_test, name="listener-test"),
    path("connections/<int:pk>/test", views_listeners.connection_test, name="connection-test"),
    path("flows/<int:pk>/", views_flows.flow_detail, name="flow"),
    path("flows/<int:pk>/step/<str:step>", views_flows.flow_step, name="flow-step"),
    path("flows/<int:pk>/mapping", views_flows.mapping_editor, name="flow-mapping"),
]

for plural in ("formats", "connections", "listeners", "flows"):
    urlpatterns += [
        path(f"{plural}/", views_resources.resource_list, {"plural": plural}, name=f"{plural}-list"),
        path(f"{plural}/new", views_resources.resource_edit, {"plural": plural}, name=f"{plural}-new"),
        path(f"{plural}/<int:pk>/edit", views_resources.resource_edit, {"plural": plural}, name=f"{plural}-edit"),
        path(f"{plural}/<int:pk>/toggle", views_resources.resource_toggle, {"plural": plural}, name=f"{plural}-toggle"),
        path(f"{plural}/<int:pk>/delete", views_resources.resource_delete, {"plural": plural}, name=f"{plural}-delete"),
    ]
