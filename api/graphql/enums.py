"""The contract's enums, exposed from domain.enums so every layer spells a value the same way."""

from __future__ import annotations

import strawberry

from domain import enums

Role = strawberry.enum(enums.Role)
OrganizationKind = strawberry.enum(enums.OrganizationKind)
ServiceType = strawberry.enum(enums.ServiceType)
CapacityStatus = strawberry.enum(enums.CapacityStatus)
Sex = strawberry.enum(enums.Sex)
RiskLevel = strawberry.enum(enums.RiskLevel)
ConsentStatus = strawberry.enum(enums.ConsentStatus)
ConsentGiver = strawberry.enum(enums.ConsentGiver)
ConsentPurpose = strawberry.enum(enums.ConsentPurpose)
DataCategory = strawberry.enum(enums.DataCategory)
ReferralPriority = strawberry.enum(enums.ReferralPriority)
ReferralStatus = strawberry.enum(enums.ReferralStatus)
SessionModality = strawberry.enum(enums.SessionModality)
SessionType = strawberry.enum(enums.SessionType)
Attendance = strawberry.enum(enums.Attendance)
ConcernLevel = strawberry.enum(enums.ConcernLevel)
OutcomeDomain = strawberry.enum(enums.OutcomeDomain)
GoalLifecycleStatus = strawberry.enum(enums.GoalLifecycleStatus)
GoalAchievementStatus = strawberry.enum(enums.GoalAchievementStatus)
UserErrorCode = strawberry.enum(enums.UserErrorCode)
CorrectionReason = strawberry.enum(enums.CorrectionReason)
LegalHoldReason = strawberry.enum(enums.LegalHoldReason)
LegalHoldRelease = strawberry.enum(enums.LegalHoldRelease)
ErasureReason = strawberry.enum(enums.ErasureReason)
ErasureStatus = strawberry.enum(enums.ErasureStatus)
PhoneMatch = strawberry.enum(enums.PhoneMatch)
DuplicateResolution = strawberry.enum(enums.DuplicateResolution)
