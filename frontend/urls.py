from django.contrib.auth import views as auth_views
from django.urls import path

from . import views, views_events, views_messages
from .forms import LoginForm

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="frontend/login.html", authentication_form=LoginForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("messages/", views_messages.message_list, name="messages"),
    path("messages/resubmit", views_messages.message_bulk_resubmit, name="messages-resubmit"),
    path("messages/<uuid:pk>/", views_messages.message_detail, name="message"),
    path("messages/<uuid:pk>/download", views_messages.message_download, name="message-download"),
    path("messages/<uuid:pk>/<str:action>", views_messages.message_action, name="message-action"),
    path("subscriptions/", views_events.subscription_list, name="subscriptions"),
    path("subscriptions/<int:pk>/deliveries/<int:delivery_id>/redeliver", views_events.delivery_redeliver,
         name="delivery-redeliver"),
    path("queues/", views_events.queue_list, name="queues"),
]
