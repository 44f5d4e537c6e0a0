from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from tenants import audit_page, views

app_name = "tenants"

urlpatterns = [
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", views.SignInView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password-reset/",
        auth_views.PasswordResetView.as_view(
            template_name="tenants/password_reset.html",
            email_template_name="tenants/password_reset_email.txt",
            subject_template_name="tenants/password_reset_subject.txt",
            success_url=reverse_lazy("tenants:password_reset_done"),
        ),
        name="password_reset",
    ),
    path(
        "accounts/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="tenants/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="tenants/password_reset_confirm.html",
            success_url=reverse_lazy("tenants:login"),
            post_reset_login=False,
        ),
        name="password_reset_confirm",
    ),
    path("accounts/switch/<int:tenant_id>/", views.switch, name="switch"),
    path("accounts/invite/<str:token>/", views.accept_invite, name="accept_invite"),
    path("members/", views.members, name="members"),
    path("members/<int:membership_id>/role/", views.change_role, name="change_role"),
    path("members/<int:membership_id>/remove/", views.remove_member, name="remove_member"),
    path(
        "members/invitations/<int:invitation_id>/revoke/", views.revoke_invitation, name="revoke_invitation"
    ),
    path("settings/audit/", audit_page.audit_log, name="audit_log"),
    path("settings/api-keys/", views.api_keys, name="api_keys"),
    path("settings/api-keys/<int:key_id>/revoke/", views.revoke_api_key, name="revoke_api_key"),
]
